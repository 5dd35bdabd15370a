package inject

import "strings"

// Environ builds the child's environment from secretrun's own (base, as
// KEY=VALUE entries) and the secrets. Secrets replace variables of the same
// name, unless preserve is set, in which case a variable already in base
// wins. secretrun's own environment is never changed: the secrets exist only
// in the returned slice. A file's variable holds its path, never its
// contents; a hidden variable (env: false) is left out.
func Environ(base []string, vars []Variable, preserve bool) []string {
	secret := make(map[string]bool, len(vars))
	for _, v := range vars {
		if !v.Hidden {
			secret[v.Name] = true
		}
	}
	env := make([]string, 0, len(base)+len(vars))
	// Only the secrets' names are looked for in base: a CI job's
	// environment has a hundred or more others.
	inBase := make(map[string]bool, len(vars))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if name == "" {
			continue
		}
		if secret[name] {
			inBase[name] = true
			if !preserve {
				continue
			}
		}
		env = append(env, kv)
	}
	for _, v := range vars {
		if v.Hidden || preserve && inBase[v.Name] {
			continue
		}
		value := v.Value.Reveal()
		if v.File {
			value = v.Path
		}
		env = append(env, v.Name+"="+value)
	}
	return env
}
