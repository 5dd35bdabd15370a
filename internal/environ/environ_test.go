package environ

import "testing"

func TestLookup(t *testing.T) {
	env := []string{"VAULT_ADDR=http://first", "VAULT", "VAULT_ADDRESS=x", "VAULT_ADDR=http://last", "EMPTY="}
	for _, c := range []struct {
		name, want string
		found      bool
	}{
		{"VAULT_ADDR", "http://last", true},
		{"VAULT_ADDRESS", "x", true},
		{"VAULT", "", false},
		{"VAULT_ADD", "", false},
		{"EMPTY", "", true},
		{"MISSING", "", false},
	} {
		if got, found := Lookup(env, c.name); got != c.want || found != c.found {
			t.Errorf("Lookup(%q) = %q, %v; want %q, %v", c.name, got, found, c.want, c.found)
		}
	}
}
