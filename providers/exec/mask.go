package exec

import (
	"encoding/json"
	"slices"
	"strings"
)

const (
	// maskMinLen is the shortest value that is masked, as for --mask:
	// shorter ones would match too much of an ordinary message.
	maskMinLen = 4
	maskText   = "*****"
)

// masker replaces values in a program's stderr before a message quotes it.
type masker struct {
	// forms are the texts to mask, longest first: a value is masked
	// whole, not around a part of it that is another value.
	forms []string
}

// newMasker masks each value, each line of a multi-line value (a program
// may print one line of it), and their JSON-escaped forms.
func newMasker(values []string) *masker {
	seen := map[string]bool{}
	m := &masker{}
	add := func(s string) {
		if len(s) >= maskMinLen && !seen[s] {
			seen[s] = true
			m.forms = append(m.forms, s)
		}
	}
	for _, v := range values {
		for _, s := range append([]string{v}, strings.Split(v, "\n")...) {
			s = strings.TrimSuffix(s, "\r")
			add(s)
			add(strings.TrimSpace(s))
			if b, err := json.Marshal(s); err == nil {
				add(string(b[1 : len(b)-1]))
			}
		}
	}
	slices.SortFunc(m.forms, func(a, b string) int { return len(b) - len(a) })
	return m
}

// mask replaces one form after the other. strings.Replacer would do it in
// one pass, but building it costs the square of a value's length, and
// output may hold values of a megabyte.
func (m *masker) mask(s string) string {
	for _, f := range m.forms {
		if len(f) <= len(s) && strings.Contains(s, f) {
			s = strings.ReplaceAll(s, f, maskText)
		}
	}
	return s
}
