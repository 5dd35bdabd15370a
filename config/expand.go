package config

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// expander resolves ${VAR} from secretrun's own environment and {env} and
// {scope} from the selection, in the string values of a tree (never in its
// keys).
type expander struct {
	file         string
	lookup       func(string) (string, bool)
	env, scope   string
	placeholders bool // whether {env} and {scope} apply here
	// lenient leaves what cannot be resolved empty instead of failing, to
	// check the keys of providers the environment does not use.
	lenient bool
	// changes counts the strings that walk rewrote.
	changes int
}

// replaceRefs replaces each `$${` and each `${...}` (up to the first `}`)
// in s with what replace returns for it, leaving a `${` without a closing
// brace as it is. It is the regexp `\$\$\{|\$\{([^}]*)\}` written out,
// because a package-level regexp is compiled on every start.
func replaceRefs(s string, replace func(ref string) string) string {
	var out strings.Builder
	written := 0 // s[:written] is in out, or replaced
	for at := 0; at < len(s); {
		i := strings.IndexByte(s[at:], '$')
		if i < 0 {
			break
		}
		i += at
		end := -1
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			end = i + 3
		case strings.HasPrefix(s[i:], "${"):
			if j := strings.IndexByte(s[i+2:], '}'); j >= 0 {
				end = i + 2 + j + 1
			}
		}
		if end < 0 {
			at = i + 1
			continue
		}
		out.WriteString(s[written:i])
		out.WriteString(replace(s[i:end]))
		written, at = end, end
	}
	if written == 0 {
		return s
	}
	out.WriteString(s[written:])
	return out.String()
}

func (x *expander) walk(path string, n ast.Node) error {
	switch v := n.(type) {
	case *ast.MappingNode:
		for _, kv := range v.Values {
			if err := x.walk(path+"."+kv.Key.String(), kv.Value); err != nil {
				return err
			}
		}
	case *ast.SequenceNode:
		for i, item := range v.Values {
			if err := x.walk(fmt.Sprintf("%s[%d]", path, i), item); err != nil {
				return err
			}
		}
	case *ast.LiteralNode:
		return x.walk(path, v.Value)
	case *ast.StringNode:
		out, err := x.expand(v.Value)
		if err != nil {
			return errorAt(x.file, v, strings.TrimPrefix(path, "."), "%s", err)
		}
		if out != v.Value {
			v.Value = out
			x.changes++
		}
	}
	return nil
}

func (x *expander) expand(s string) (string, error) {
	var err error
	out := replaceRefs(s, func(m string) string {
		if m == "$${" {
			return "${"
		}
		ref := m[2 : len(m)-1]
		name, def, hasDefault := strings.Cut(ref, ":-")
		if !ValidName(name) {
			err = fmt.Errorf("${%s} is not a valid reference; write ${NAME} or ${NAME:-default}", ref)
			return m
		}
		if val, ok := x.lookup(name); ok && (val != "" || !hasDefault) {
			return val
		}
		if hasDefault {
			return def
		}
		if x.lenient {
			return ""
		}
		if err == nil {
			err = fmt.Errorf("${%s} is not set in secretrun's environment; export it, or write ${%s:-default}", name, name)
		}
		return m
	})
	if err != nil {
		return "", err
	}
	if !x.placeholders {
		return out, nil
	}
	out = strings.ReplaceAll(out, "{env}", x.env)
	if strings.Contains(out, "{scope}") {
		if x.scope == "" && !x.lenient {
			return "", fmt.Errorf("{scope} needs a scope: pass --scope NAME or set SECRETRUN_SCOPE")
		}
		out = strings.ReplaceAll(out, "{scope}", x.scope)
	}
	return out, nil
}
