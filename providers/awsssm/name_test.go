package awsssm

import (
	"regexp"
	"testing"
)

// The loops read what the regexps they replaced read: every string up to
// five bytes over an alphabet with each class and its neighbours.
func TestValidNameAndSelectorMatchRegexps(t *testing.T) {
	nameOracle := regexp.MustCompile(`^[A-Za-z0-9_.\-/]+$`)
	selectorOracle := regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)
	alphabet := []byte("aZ09_.-/ :\n@\x80")
	var walk func(prefix []byte)
	walk = func(prefix []byte) {
		s := string(prefix)
		if got, want := validName(s), nameOracle.MatchString(s); got != want {
			t.Fatalf("validName(%q) = %v, the regexp gives %v", s, got, want)
		}
		if got, want := validSelector(s), selectorOracle.MatchString(s); got != want {
			t.Fatalf("validSelector(%q) = %v, the regexp gives %v", s, got, want)
		}
		if len(prefix) == 5 {
			return
		}
		for _, c := range alphabet {
			walk(append(prefix, c))
		}
	}
	walk(nil)
}
