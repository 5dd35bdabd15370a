package awsconf

import (
	"strings"
)

// iniValue is one key's value in a section: a string, or, for a key whose
// value is on indented lines below it (a `services` section's
// `ssm =\n  endpoint_url = ...`), the sub-properties.
type iniValue struct {
	str string
	sub map[string]string
}

// iniSection is one [name] of a shared config or credentials file.
type iniSection struct {
	name string
	// files are the files the section was read from, for messages.
	files  []string
	values map[string]iniValue
	// errs are what makes the section unusable (partial keys), reported
	// only when the section is used, as the SDK does.
	errs []string
}

func (s *iniSection) has(key string) bool {
	_, ok := s.values[key]
	return ok
}

func (s *iniSection) get(key string) string { return s.values[key].str }

// iniSections are the sections of one or more files, by name.
type iniSections map[string]*iniSection

// parseINI reads a shared config or credentials file as the SDK's own
// parser does (config/internal/ini): `#` and `;` start comment lines, and
// comments after a value when a space or tab comes before them; keys are
// case-insensitive and `:` works as `=`; a value in quotes loses them;
// indented lines continue the value above, or are sub-properties of a key
// whose value is empty; lines that are none of these are ignored. A
// section named twice is one section, the later values winning.
func parseINI(data string) iniSections {
	sections := iniSections{}
	var cur *iniSection
	key := ""
	for line := range strings.SplitSeq(data, "\n") {
		line = strings.TrimSuffix(line, "\r")
		trimmed := strings.TrimLeft(line, " \t")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";") {
			continue
		}
		if name, ok := iniSectionName(line); ok {
			key = ""
			cur = sections[name]
			if cur == nil {
				cur = &iniSection{name: name, values: map[string]iniValue{}}
				sections[name] = cur
			}
			continue
		}
		indented := line[0] == ' ' || line[0] == '\t'
		if !indented {
			k, v, ok := splitProperty(strings.TrimRight(trimPropertyComment(line), " \t"))
			if ok && cur != nil {
				key = strings.ToLower(k)
				cur.values[key] = iniValue{str: unquote(v)}
			}
			continue
		}
		if cur == nil {
			continue
		}
		if k, v, ok := splitProperty(trimmed); ok {
			k = strings.ToLower(k)
			if key == "" || cur.values[key].str != "" {
				// An indented property under a key that has a value
				// (or under none) is a property of its own.
				key = k
				cur.values[k] = iniValue{str: strings.TrimSpace(trimPropertyComment(unquote(v)))}
				continue
			}
			val := cur.values[key]
			if val.sub == nil {
				val.sub = map[string]string{}
			}
			val.sub[k] = unquote(v)
			cur.values[key] = val
			continue
		}
		if key != "" {
			if val := cur.values[key]; val.str != "" && val.sub == nil {
				val.str += "\n" + trimmed
				cur.values[key] = val
			}
		}
	}
	return sections
}

// iniSectionName reads "[ type name ] ; comment" as "type name", with one
// space between the two words, or "[name]" as "name".
func iniSectionName(line string) (string, bool) {
	s, _, _ := strings.Cut(line, "#")
	s, _, _ = strings.Cut(s, ";")
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "[") || !strings.HasSuffix(s, "]") {
		return "", false
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, true
	}
	return s[:i] + " " + strings.TrimLeft(s[i:], " \t"), true
}

func trimPropertyComment(s string) string {
	for _, sep := range []string{" #", " ;", "\t#", "\t;"} {
		s, _, _ = strings.Cut(s, sep)
	}
	return s
}

// splitProperty splits "key = value" or "key: value", whichever separator
// comes first.
func splitProperty(s string) (string, string, bool) {
	sep := "="
	equals, colon := strings.Index(s, "="), strings.Index(s, ":")
	if equals == -1 || colon != -1 && colon < equals {
		sep = ":"
	}
	k, v, ok := strings.Cut(s, sep)
	if !ok {
		return "", "", false
	}
	return strings.TrimSpace(k), strings.TrimSpace(v), true
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}
