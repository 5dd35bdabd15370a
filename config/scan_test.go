package config

import (
	"regexp"
	"testing"
)

// The scanners replaced regexps compiled at every start; the regexps are
// their specification.
func TestReplaceRefsIsTheRegexp(t *testing.T) {
	re := regexp.MustCompile(`\$\$\{|\$\{([^}]*)\}`)
	alphabet := []byte("$${}a")
	var inputs []string
	var gen func(prefix []byte, n int)
	gen = func(prefix []byte, n int) {
		inputs = append(inputs, string(prefix))
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(append(append([]byte{}, prefix...), c), n-1)
		}
	}
	gen(nil, 7)
	mark := func(m string) string { return "<" + m + ">" }
	for _, in := range inputs {
		if got, want := replaceRefs(in, mark), re.ReplaceAllStringFunc(in, mark); got != want {
			t.Fatalf("%q: got %q, regexp gives %q", in, got, want)
		}
	}
}

func TestValidNameIsTheRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	for _, name := range []string{"", "A", "a", "_", "9", "A9", "_9_", "9A", "A-B", "A B", "DB_PASSWORD", "é", "Aé", "a.b", "$A"} {
		if got, want := ValidName(name), re.MatchString(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}
