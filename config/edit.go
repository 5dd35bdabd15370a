package config

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/secretrun/secretrun/providers"
)

// The edits below change a config file the way a person would: they find
// where things are through the parsed document, then insert or replace whole
// lines of text, so every comment, blank line, quote style and key order of
// the rest of the file stays byte for byte as it was. Re-printing the AST
// would normalise all of those.

// NewFileText is the text of a new config file with one empty environment,
// ready for AddProvider and AddSource.
func NewFileText(environment string) []byte {
	return fmt.Appendf(nil, `# Where this application's secrets live: addresses and paths, never values.
version: 1
default_environment: %s

providers:

environments:
  %s:
`, yamlScalar(environment), yamlScalar(environment))
}

// AddProvider returns src with the provider instance name, of type typ with
// settings, added under providers:. It reports false, and returns src
// unchanged, when an instance of that name exists.
func AddProvider(file string, src []byte, name, typ string, settings []providers.SourceSetting) ([]byte, bool, error) {
	d, err := parse(file, src)
	if err != nil {
		return nil, false, err
	}
	if d.provider(name) != nil {
		return src, false, nil
	}
	t := newText(src)
	body := []providers.SourceSetting{{Key: "type", Value: typ}}
	body = append(body, settings...)
	entry := func(keyIndent, settingIndent int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s%s:%s", spaces(keyIndent), yamlScalar(name), t.nl)
		for _, s := range body {
			fmt.Fprintf(&b, "%s%s: %s%s", spaces(settingIndent), s.Key, yamlValue(s.Value), t.nl)
		}
		return b.String()
	}

	kv := keyValue(d.root, "providers")
	switch {
	case kv == nil:
		// No providers: section yet: one goes before environments:, above
		// the comments that introduce it.
		envs := keyValue(d.root, "environments")
		line := t.commentsAbove(lineOf(envs.Key))
		return t.insertBefore(line, "providers:"+t.nl+entry(2, 4)+t.nl), true, nil
	case isNull(kv.Value):
		return t.insertAfter(lineOf(kv.Key), entry(indentOf(kv.Key)+2, indentOf(kv.Key)+4)), true, nil
	}
	m, ok := kv.Value.(*ast.MappingNode)
	if !ok || m.IsFlowStyle || len(m.Values) == 0 {
		return nil, false, errorAt(file, kv.Value, "providers", "is written in flow style ({...}); write it as an indented block to have %s added to it", name)
	}
	last := m.Values[len(m.Values)-1]
	keyIndent := indentOf(last.Key)
	settingIndent := keyIndent + 2
	if pm, ok := m.Values[0].Value.(*ast.MappingNode); ok && !pm.IsFlowStyle && len(pm.Values) > 0 {
		settingIndent = indentOf(pm.Values[0].Key)
	}
	end := t.blockEnd(lineOf(last.Key), keyIndent, true)
	return t.insertAfter(end, entry(keyIndent, settingIndent)), true, nil
}

// NewSource is a source for AddSource to add.
type NewSource struct {
	// Environment is the environment to add it to; one that does not exist
	// is added.
	Environment string
	// Provider is the provider instance it reads, its `from:`.
	Provider string
	// Settings are its other keys, in order.
	Settings []providers.SourceSetting
	// Replace replaces a source of the environment that reads the same
	// thing (see AddSource) instead of refusing.
	Replace bool
}

// Added is what AddSource did.
type Added struct {
	// Text is the new config text.
	Text []byte
	// Line is the line of the new source's `from:`.
	Line int
	// Replaced is the position of the source it replaced; "" if none.
	Replaced string
}

// ExistingSourceError is AddSource refusing to add a source that would read
// what a source of the environment already reads.
type ExistingSourceError struct {
	// Pos and Path locate the source that exists.
	Pos, Path string
}

func (e *ExistingSourceError) Error() string {
	return fmt.Sprintf("%s: %s already reads from there", e.Pos, e.Path)
}

// AddSource returns src with s appended to its environment's sources.
//
// A source of the environment reads the same thing when it has the same
// `from:`, the same value for each of s's settings that is a string (paths
// compared without leading or trailing slashes), and shares an item with
// each that is a list. AddSource refuses with an *ExistingSourceError when
// one does, unless s.Replace: then that source's lines are replaced by the
// new source, whose lists also keep the items the old one had.
func AddSource(file string, src []byte, s NewSource) (*Added, error) {
	d, err := parse(file, src)
	if err != nil {
		return nil, err
	}
	t := newText(src)
	envs := keyValue(d.root, "environments")
	envMap, ok := envs.Value.(*ast.MappingNode)
	if !ok || envMap.IsFlowStyle {
		return nil, errorAt(file, envs.Value, "environments", "is written in flow style ({...}); write it as an indented block to have a source added to it")
	}
	var env *ast.MappingValueNode
	for _, kv := range envMap.Values {
		if kv.Key.String() == s.Environment {
			env = kv
		}
	}
	item := func(dashIndent, keyIndent int, settings []providers.SourceSetting) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s-%sfrom: %s%s", spaces(dashIndent), spaces(keyIndent-dashIndent-1), yamlScalar(s.Provider), t.nl)
		for _, st := range settings {
			fmt.Fprintf(&b, "%s%s: %s%s", spaces(keyIndent), st.Key, yamlValue(st.Value), t.nl)
		}
		return b.String()
	}

	if env == nil {
		last := envMap.Values[len(envMap.Values)-1]
		keyIndent := indentOf(last.Key)
		dash := keyIndent + 2
		if seq, ok := last.Value.(*ast.SequenceNode); ok && !seq.IsFlowStyle && len(seq.Entries) > 0 {
			dash = seq.Entries[0].Start.Position.Column - 1
		}
		end := t.blockEnd(lineOf(last.Key), keyIndent, true)
		text := fmt.Sprintf("%s%s:%s", spaces(keyIndent), yamlScalar(s.Environment), t.nl) + item(dash, dash+2, s.Settings)
		return &Added{Text: t.insertAfter(end, text), Line: end + 2}, nil
	}

	path := "environments." + s.Environment
	if isNull(env.Value) {
		dash := indentOf(env.Key) + 2
		line := lineOf(env.Key)
		return &Added{Text: t.insertAfter(line, item(dash, dash+2, s.Settings)), Line: line + 1}, nil
	}
	seq, ok := env.Value.(*ast.SequenceNode)
	if ok && seq.IsFlowStyle && len(seq.Values) == 0 && seq.End != nil && seq.Start.Position.Line == seq.End.Position.Line {
		// `dev: []`: the brackets go, the list follows as a block.
		line := seq.Start.Position.Line
		l := t.line(line)
		open, closing := seq.Start.Position.Column-1, seq.End.Position.Column
		if closing <= len(l) && l[open] == '[' && l[closing-1] == ']' {
			rest := strings.TrimRight(l[:open], " ") + l[closing:]
			dash := indentOf(env.Key) + 2
			return &Added{Text: t.replaceLines(line, line, rest+t.nl+item(dash, dash+2, s.Settings)), Line: line + 1}, nil
		}
	}
	if !ok || seq.IsFlowStyle || len(seq.Entries) == 0 {
		return nil, errorAt(file, env.Value, path, "is written in flow style ([...]); write it as an indented list (- from: ...) to have a source added to it")
	}
	dash := seq.Entries[0].Start.Position.Column - 1
	keyIndent := dash + 2
	if m, ok := seq.Entries[0].Value.(*ast.MappingNode); ok && len(m.Values) > 0 {
		keyIndent = indentOf(m.Values[0].Key)
	}
	for i, e := range seq.Entries {
		m, ok := e.Value.(*ast.MappingNode)
		if !ok || !readsSame(m, s) {
			continue
		}
		at := position(file, m)
		itemPath := fmt.Sprintf("%s[%d]", path, i)
		if !s.Replace {
			return nil, &ExistingSourceError{Pos: at, Path: itemPath}
		}
		first := e.Start.Position.Line
		last := t.blockEnd(first, dash, false)
		text := item(dash, keyIndent, mergeLists(m, s.Settings))
		return &Added{Text: t.replaceLines(first, last, text), Line: first, Replaced: at}, nil
	}
	last := seq.Entries[len(seq.Entries)-1]
	end := t.blockEnd(last.Start.Position.Line, dash, false)
	return &Added{Text: t.insertAfter(end, item(dash, keyIndent, s.Settings)), Line: end + 1}, nil
}

// readsSame reports whether the source m reads what s would (see AddSource).
func readsSame(m *ast.MappingNode, s NewSource) bool {
	if from := keyValue(m, "from"); from == nil || scalar(from.Value) != s.Provider {
		return false
	}
	for _, st := range s.Settings {
		kv := keyValue(m, st.Key)
		if kv == nil {
			return false
		}
		switch want := st.Value.(type) {
		case string:
			if strings.Trim(scalar(kv.Value), "/") != strings.Trim(want, "/") {
				return false
			}
		case []string:
			if !slices.ContainsFunc(scalars(kv.Value), func(v string) bool { return slices.Contains(want, v) }) {
				return false
			}
		}
	}
	return true
}

// mergeLists returns settings with each list holding the items of the same
// list in m first.
func mergeLists(m *ast.MappingNode, settings []providers.SourceSetting) []providers.SourceSetting {
	out := slices.Clone(settings)
	for i, st := range out {
		want, ok := st.Value.([]string)
		if !ok {
			continue
		}
		var merged []string
		if kv := keyValue(m, st.Key); kv != nil {
			merged = scalars(kv.Value)
		}
		for _, v := range want {
			if !slices.Contains(merged, v) {
				merged = append(merged, v)
			}
		}
		out[i].Value = merged
	}
	return out
}

func keyValue(m *ast.MappingNode, key string) *ast.MappingValueNode {
	for _, kv := range m.Values {
		if kv.Key.String() == key {
			return kv
		}
	}
	return nil
}

func scalars(n ast.Node) []string {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		return nil
	}
	var out []string
	for _, v := range seq.Values {
		out = append(out, scalar(v))
	}
	return out
}

func lineOf(n ast.Node) int   { return n.GetToken().Position.Line }
func indentOf(n ast.Node) int { return n.GetToken().Position.Column - 1 }

func spaces(n int) string { return strings.Repeat(" ", max(n, 0)) }

// yamlScalar renders s as a YAML scalar on one line, quoted only when it
// must be.
func yamlScalar(s string) string {
	b, err := yaml.Marshal(s)
	if err != nil || bytes.Count(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) > 0 {
		return fmt.Sprintf("%q", s)
	}
	return string(bytes.TrimSuffix(b, []byte("\n")))
}

// yamlValue renders a setting's value: a scalar, or a list in flow style,
// as secretrun.yaml writes `keys: [A, B]`.
func yamlValue(v any) string {
	switch x := v.(type) {
	case []string:
		items := make([]string, len(x))
		for i, s := range x {
			items[i] = yamlScalar(s)
		}
		return "[" + strings.Join(items, ", ") + "]"
	case string:
		return yamlScalar(x)
	}
	return yamlScalar(fmt.Sprint(v))
}

// text is a config file as lines, for edits by whole lines.
type text struct {
	src []byte
	// starts holds the offset of each line's first byte; line n (from 1)
	// starts at starts[n-1].
	starts []int
	// nl is the file's line ending.
	nl string
}

func newText(src []byte) *text {
	t := &text{src: src, starts: []int{0}, nl: "\n"}
	if bytes.Contains(src, []byte("\r\n")) {
		t.nl = "\r\n"
	}
	for i, c := range src {
		if c == '\n' && i+1 < len(src) {
			t.starts = append(t.starts, i+1)
		}
	}
	return t
}

func (t *text) lines() int { return len(t.starts) }

// line is line n without its ending.
func (t *text) line(n int) string {
	end := len(t.src)
	if n < len(t.starts) {
		end = t.starts[n]
	}
	return strings.TrimRight(string(t.src[t.starts[n-1]:end]), "\r\n")
}

// offsetAfter is where the text after line n begins.
func (t *text) offsetAfter(n int) int {
	if n < len(t.starts) {
		return t.starts[n]
	}
	return len(t.src)
}

// blockEnd is the last line of the block that starts on line first with
// its key or dash indented by indent: the lines after it that are indented
// deeper, up to the next line indented as little. Blank lines and comments
// no deeper than indent that end the block belong to what follows. A
// mapping entry's block (entry) also holds a list written at the key's own
// indentation, as YAML allows.
func (t *text) blockEnd(first, indent int, entry bool) int {
	last := first
	for n := first + 1; n <= t.lines(); n++ {
		l := t.line(n)
		trimmed := strings.TrimLeft(l, " ")
		depth := len(l) - len(trimmed)
		switch {
		case trimmed == "":
		case strings.HasPrefix(trimmed, "#"):
			if depth > indent {
				last = n
			}
		case depth > indent, entry && depth == indent && (trimmed == "-" || strings.HasPrefix(trimmed, "- ")):
			last = n
		default:
			return last
		}
	}
	return last
}

// commentsAbove is the first line of the comments directly above line n
// at no indentation, or n when there are none.
func (t *text) commentsAbove(n int) int {
	for n > 1 && strings.HasPrefix(t.line(n-1), "#") {
		n--
	}
	return n
}

// insertAfter returns the text with s inserted after line n.
func (t *text) insertAfter(n int, s string) []byte {
	at := t.offsetAfter(n)
	var b bytes.Buffer
	b.Write(t.src[:at])
	if at > 0 && t.src[at-1] != '\n' {
		b.WriteString(t.nl)
	}
	b.WriteString(s)
	b.Write(t.src[at:])
	return b.Bytes()
}

// insertBefore returns the text with s inserted before line n.
func (t *text) insertBefore(n int, s string) []byte {
	at := t.starts[n-1]
	return slices.Concat(t.src[:at], []byte(s), t.src[at:])
}

// replaceLines returns the text with lines first to last replaced by s.
func (t *text) replaceLines(first, last int, s string) []byte {
	end := t.offsetAfter(last)
	tail := t.src[end:]
	if end == len(t.src) && !bytes.HasSuffix(t.src, []byte("\n")) {
		s = strings.TrimSuffix(s, t.nl)
	}
	return slices.Concat(t.src[:t.starts[first-1]], []byte(s), tail)
}

// HasProvider reports whether the file defines a provider instance name.
func (f *File) HasProvider(name string) bool {
	d, err := parse(f.Name, f.src)
	return err == nil && d.provider(name) != nil
}
