package infisical

import (
	"regexp"
	"testing"
)

// validPath replaced this regexp, compiled at every start; the regexp is
// its specification.
func TestValidPathIsTheRegexp(t *testing.T) {
	re := regexp.MustCompile(`^/([A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*)?$`)
	for _, path := range []string{"", "/", "//", "/a", "a", "a/", "/a/", "/a/b", "/a//b", "/a-b_c.d/E9", "/a b", "/é", "/a/b/", "/..", "/a$", "\\a"} {
		if got, want := validPath(path), re.MatchString(path); got != want {
			t.Errorf("validPath(%q) = %v, want %v", path, got, want)
		}
	}
}
