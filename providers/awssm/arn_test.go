package awssm

import (
	"regexp"
	"testing"
)

// The loop in trimARNSuffix reads what the regexp it replaced read: every
// string up to seven bytes over an alphabet with the edge cases.
func TestTrimARNSuffixMatchesRegexp(t *testing.T) {
	oracle := regexp.MustCompile(`-[A-Za-z0-9]{6}$`)
	alphabet := []byte("-aZ09_/\xc3")
	var walk func(prefix []byte)
	walk = func(prefix []byte) {
		name := string(prefix)
		if got, want := trimARNSuffix(name), oracle.ReplaceAllString(name, ""); got != want {
			t.Fatalf("trimARNSuffix(%q) = %q, the regexp gives %q", name, got, want)
		}
		if len(prefix) == 7 {
			return
		}
		for _, c := range alphabet {
			walk(append(prefix, c))
		}
	}
	walk(nil)
	for _, name := range []string{"prod/db-AbC123", "db-AbC12", "db--AbC123", "a-b-ééé", "-AbC123"} {
		if got, want := trimARNSuffix(name), oracle.ReplaceAllString(name, ""); got != want {
			t.Errorf("trimARNSuffix(%q) = %q, the regexp gives %q", name, got, want)
		}
	}
}

func TestNameOfDropsTheRandomSuffix(t *testing.T) {
	for id, want := range map[string]string{
		"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbC123": "prod/db",
		"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db":        "prod/db",
		"prod/db-AbC123": "prod/db-AbC123",
	} {
		if got := nameOf(id); got != want {
			t.Errorf("nameOf(%q) = %q, want %q", id, got, want)
		}
	}
}
