package config

import (
	"fmt"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"

	"github.com/secretrun/secretrun/providers"
)

// commonKeys are the keys every source understands, whatever its provider.
type commonKeys struct {
	From     string        `yaml:"from"`
	Keys     []string      `yaml:"keys"`
	Map      yaml.MapSlice `yaml:"map"`
	Prefix   string        `yaml:"prefix"`
	As       string        `yaml:"as"`
	Optional bool          `yaml:"optional"`
	Version  versionValue  `yaml:"version"`
	// Files turns fields into memory-only files: VAR: field, the variable
	// holding the file's path.
	Files yaml.MapSlice `yaml:"files"`
	// Env is false for a source whose variables are for templates only.
	Env *bool `yaml:"env"`
}

var commonKeyNames = yamlKeys(reflectTypeOf[commonKeys]())

// versionValue accepts `version: 3` and `version: "abc-123"` alike.
type versionValue string

func (v *versionValue) UnmarshalYAML(unmarshal func(any) error) error {
	var raw any
	if err := unmarshal(&raw); err != nil {
		return err
	}
	switch x := raw.(type) {
	case string:
		*v = versionValue(x)
	case uint64, int64, int, uint:
		*v = versionValue(fmt.Sprint(x))
	default:
		return fmt.Errorf("version must be a number or a string")
	}
	return nil
}

// ValidName reports whether name can be an environment variable's name:
// a letter or underscore, then letters, digits and underscores. A loop, not
// a regexp, because a package-level regexp is compiled on every start.
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// splitSource separates the common keys of a source from the keys that
// belong to its provider, and checks the common ones.
func (d *document) splitSource(path string, node *ast.MappingNode) (*commonKeys, *ast.MappingNode, error) {
	var common, own []*ast.MappingValueNode
	isCommon := map[string]bool{}
	for _, k := range commonKeyNames {
		isCommon[k] = true
	}
	for _, kv := range node.Values {
		if isCommon[kv.Key.String()] {
			common = append(common, kv)
		} else {
			own = append(own, kv)
		}
	}
	var c commonKeys
	if err := decodeStrict(d.file, path, ast.Mapping(node.Start, node.IsFlowStyle, common...), &c); err != nil {
		return nil, nil, err
	}
	at := func(key string) ast.Node { return valueOf(node, key, node) }
	switch {
	case c.From == "":
		return nil, nil, errorAt(d.file, node, path, "missing `from:`, the name of a provider under providers:")
	case d.provider(c.From) == nil:
		return nil, nil, errorAt(d.file, at("from"), path+".from", "provider %q is not defined under providers: (defined: %s)", c.From, d.providerNames())
	case c.As != "" && (len(c.Keys) > 0 || len(c.Map) > 0):
		return nil, nil, errorAt(d.file, at("as"), path+".as", "`as` names a plain secret's one variable; it cannot be combined with keys or map")
	case c.As != "" && !ValidName(c.As):
		return nil, nil, errorAt(d.file, at("as"), path+".as", "%q is not a valid variable name (letters, digits and _, not starting with a digit)", c.As)
	}
	for _, item := range c.Map {
		name := fmt.Sprint(item.Key)
		if _, ok := item.Value.(string); !ok {
			return nil, nil, errorAt(d.file, at("map"), path+".map."+name, "must name a field of the secret, as a string")
		}
		if !ValidName(name) {
			return nil, nil, errorAt(d.file, at("map"), path+".map", "%q is not a valid variable name (letters, digits and _, not starting with a digit)", name)
		}
	}
	if err := d.checkSourceFiles(path, node, &c); err != nil {
		return nil, nil, err
	}
	return &c, ast.Mapping(node.Start, node.IsFlowStyle, own...), nil
}

// checkSourceFiles checks a source's files: and env:.
func (d *document) checkSourceFiles(path string, node *ast.MappingNode, c *commonKeys) error {
	at := func(key string) ast.Node { return valueOf(node, key, node) }
	if c.Env != nil && !*c.Env && len(c.Files) > 0 {
		return errorAt(d.file, at("env"), path+".env",
			"env: false keeps this source's variables for templates only, so the paths of its files: would reach no program; drop env: false, or read the files' fields from another source")
	}
	mapped := map[string]bool{}
	for _, item := range c.Map {
		mapped[fmt.Sprint(item.Key)] = true
	}
	for _, item := range c.Files {
		name := fmt.Sprint(item.Key)
		if _, ok := item.Value.(string); !ok {
			return errorAt(d.file, at("files"), path+".files."+name, "must name a field of the secret, as a string (\"\" for a plain secret's one value)")
		}
		switch {
		case !ValidName(name):
			return errorAt(d.file, at("files"), path+".files", "%q is not a valid variable name (letters, digits and _, not starting with a digit)", name)
		case mapped[name] || name == c.As:
			return errorAt(d.file, at("files"), path+".files."+name, "%s is also a variable of this source's map or as; a variable holds either a value or a file's path", name)
		}
	}
	return nil
}

func (c *commonKeys) source(pos string) *providers.Source {
	s := &providers.Source{
		Provider: c.From,
		Keys:     c.Keys,
		Prefix:   c.Prefix,
		As:       c.As,
		Optional: c.Optional,
		Version:  string(c.Version),
		Pos:      pos,
	}
	for _, item := range c.Map {
		s.Map = append(s.Map, providers.Rename{Var: fmt.Sprint(item.Key), Field: item.Value.(string)})
	}
	for _, item := range c.Files {
		s.Files = append(s.Files, providers.Rename{Var: fmt.Sprint(item.Key), Field: item.Value.(string)})
	}
	s.NoEnv = c.Env != nil && !*c.Env
	return s
}

// options is a provider's block of settings, or the provider-specific part
// of a source.
type options struct {
	file, path string
	node       *ast.MappingNode
	// extra are keys valid beside the provider's own, listed in messages.
	extra []string
}

func (o *options) Decode(v any) error {
	return decodeStrict(o.file, o.path, o.node, v, o.extra...)
}

func (o *options) Pos() string { return position(o.file, o.node) }

func (d *document) providerNames() string {
	return names(d.providers, func(p *providerNode) string { return p.name })
}
func (d *document) environmentNames() string {
	return names(d.environments, func(e *environmentNode) string { return e.name })
}

func names[T any](items []T, name func(T) string) string {
	if len(items) == 0 {
		return "none"
	}
	s := ""
	for i, it := range items {
		if i > 0 {
			s += ", "
		}
		s += name(it)
	}
	return s
}
