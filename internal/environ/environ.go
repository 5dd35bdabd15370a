// Package environ reads environment lists, KEY=VALUE entries as
// os.Environ returns them and execve(2) takes them.
package environ

// Lookup finds name in env as getenv(3) does: the last entry of a repeated
// name wins, a name is matched whole, and an entry without "=" is no
// variable. A start looks names up by the dozen in environments of a
// hundred entries or more (a CI job's), so each comparison is made in
// place, with nothing built per entry.
func Lookup(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		kv := env[i]
		if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
			return kv[len(name)+1:], true
		}
	}
	return "", false
}
