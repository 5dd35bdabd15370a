// Package config loads secretrun.yaml strictly and turns it into a plan: the
// provider instances and sources of one environment and scope, with every
// placeholder resolved. Every problem is an *Error naming file:line:col.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// FileName is the name secretrun looks for, walking up from the working
// directory.
const FileName = "secretrun.yaml"

// ErrNoConfig is returned by Find when no config file exists.
var ErrNoConfig = errors.New("no " + FileName + " found in this directory or any parent; create one or pass --config")

// Find walks up from dir to the first directory holding secretrun.yaml.
func Find(dir string) (string, error) {
	for {
		p := filepath.Join(dir, FileName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoConfig
		}
		dir = parent
	}
}

// File is a loaded config file whose structure has been checked: known keys,
// types, provider types and references between sections, in every
// environment. Values that depend on the environment being run (${VAR},
// {env}, {scope}) are resolved by Plan.
type File struct {
	// Name is the file's path as shown in messages.
	Name               string
	Version            int
	DefaultEnvironment string
	// Environments are the environment names, in file order.
	Environments []string
	// Files are the memory-only files rendered from templates (`files:`),
	// in file order; the same in every environment.
	Files []*Template

	src []byte
	// parsed is the document Parse checked, handed to the first Plan;
	// planning rewrites it, so any later Plan parses the text again.
	parsed *document
	// audits is whether the file has `audit:` settings, which Audit parses
	// the text again for; most files have none, and a run then parses
	// its config only once.
	audits bool
}

// Watch holds the `watch:` settings.
type Watch struct {
	Enabled     bool          `yaml:"enabled"`
	Interval    time.Duration `yaml:"interval"`
	OnChange    string        `yaml:"on_change"`
	Signal      string        `yaml:"signal"`
	StopSignal  string        `yaml:"stop_signal"`
	StopTimeout time.Duration `yaml:"stop_timeout"`
	Splay       time.Duration `yaml:"splay"`
	// Ready is `watch.ready:`, decoded on its own (see decodeReady).
	Ready Ready `yaml:"-"`
}

// DefaultWatch is the watch configuration when secretrun.yaml says nothing.
var DefaultWatch = Watch{
	Interval:    30 * time.Second,
	OnChange:    "restart",
	Signal:      "SIGHUP",
	StopSignal:  "SIGTERM",
	StopTimeout: 10 * time.Second,
}

// topLevel is the shape of the file; providers and environments are walked
// node by node because their content belongs partly to the providers.
type topLevel struct {
	Version            int      `yaml:"version"`
	DefaultEnvironment string   `yaml:"default_environment"`
	Providers          ast.Node `yaml:"-"`
	Environments       ast.Node `yaml:"-"`
	Watch              ast.Node `yaml:"-"`
	Files              ast.Node `yaml:"-"`
	Mask               bool     `yaml:"mask"`
	// Audit is decoded by File.Audit, with ${VAR} expanded.
	Audit any `yaml:"audit"`
}

// Load reads and checks a config file. name is the path shown in messages.
func Load(name string) (*File, error) {
	src, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(name, src)
}

// Parse checks config text; name is the path shown in messages.
func Parse(name string, src []byte) (*File, error) {
	d, err := parse(name, src)
	if err != nil {
		return nil, err
	}
	if err := d.checkAll(); err != nil {
		return nil, err
	}
	templates, err := d.parseTemplates()
	if err != nil {
		return nil, err
	}
	f := &File{Name: name, Version: d.top.Version, DefaultEnvironment: d.top.DefaultEnvironment, Files: templates, src: src, parsed: d}
	if node := valueOf(d.root, "audit", nil); node != nil && !isNull(node) {
		f.audits = true
	}
	for _, e := range d.environments {
		f.Environments = append(f.Environments, e.name)
	}
	return f, nil
}

// document is one parse of the file, split into its sections.
type document struct {
	file         string
	src          []byte
	root         *ast.MappingNode
	top          topLevel
	watch        ast.Node
	files        ast.Node
	listen       ast.Node
	proxy        ast.Node
	providers    []*providerNode
	environments []*environmentNode
	// splits are the sources' common keys as checkAll read them, for the
	// Plan of this document (each plans once) to use again where the
	// placeholders changed nothing: decoding them was a third of the time
	// a config took to load and plan.
	splits map[*ast.MappingNode]split
}

// split is a source's common keys and the rest of its keys.
type split struct {
	common *commonKeys
	own    *ast.MappingNode
}

type providerNode struct {
	name     string
	typ      string
	key      ast.Node // the instance's name, for positions
	typeNode ast.Node // the value of `type:`, for positions
	settings *ast.MappingNode
}

type environmentNode struct {
	name    string
	key     ast.Node
	sources []*ast.MappingNode
}

func parse(file string, src []byte) (*document, error) {
	tree, err := parser.ParseBytes(src, 0)
	if err != nil {
		return nil, yamlSyntaxError(file, err)
	}
	d := &document{file: file, src: src}
	if len(tree.Docs) != 1 || tree.Docs[0].Body == nil {
		return nil, &Error{Pos: file, Msg: "the file is empty; it needs at least `version: 1` and `environments:`"}
	}
	root, ok := tree.Docs[0].Body.(*ast.MappingNode)
	if !ok {
		return nil, errorAt(file, tree.Docs[0].Body, "", "the file must be a mapping with version, providers and environments")
	}
	d.root = root

	// The sections walked node by node are cut out before the strict decode
	// of the rest, so that decode still rejects unknown top-level keys.
	var rest []*ast.MappingValueNode
	for _, kv := range root.Values {
		switch kv.Key.String() {
		case "providers":
			d.top.Providers = kv.Value
		case "environments":
			d.top.Environments = kv.Value
		case "watch":
			d.watch = kv.Value
		case "files":
			d.files = kv.Value
		case "listen":
			d.listen = kv.Value
		case "proxy":
			d.proxy = kv.Value
		default:
			rest = append(rest, kv)
		}
	}
	if err := decodeStrict(file, "", ast.Mapping(root.Start, root.IsFlowStyle, rest...), &d.top, "providers", "environments", "watch", "files", "listen", "proxy"); err != nil {
		return nil, err
	}
	if d.top.Version != 1 {
		return nil, errorAt(file, valueOf(root, "version", root), "version", "unsupported version %d; this secretrun reads `version: 1`", d.top.Version)
	}
	if err := d.splitProviders(); err != nil {
		return nil, err
	}
	if err := d.splitEnvironments(); err != nil {
		return nil, err
	}
	return d, nil
}

func yamlSyntaxError(file string, err error) error {
	var yerr yaml.Error
	if errors.As(err, &yerr) {
		pos := file
		if t := yerr.GetToken(); t != nil {
			pos = fmt.Sprintf("%s:%d:%d", file, t.Position.Line, t.Position.Column)
		}
		return &Error{Pos: pos, Msg: "invalid YAML: " + yerr.GetMessage()}
	}
	return &Error{Pos: file, Msg: "invalid YAML: " + err.Error()}
}

func valueOf(m *ast.MappingNode, key string, fallback ast.Node) ast.Node {
	for _, kv := range m.Values {
		if kv.Key.String() == key {
			return kv.Value
		}
	}
	return fallback
}

func (d *document) splitProviders() error {
	if d.top.Providers == nil || isNull(d.top.Providers) {
		return nil
	}
	m, ok := d.top.Providers.(*ast.MappingNode)
	if !ok {
		return errorAt(d.file, d.top.Providers, "providers", "must be a mapping of provider names to settings")
	}
	for _, kv := range m.Values {
		name := kv.Key.String()
		path := "providers." + name
		settings, ok := kv.Value.(*ast.MappingNode)
		if !ok {
			return errorAt(d.file, kv.Value, path, "must be a mapping with at least `type:`")
		}
		p := &providerNode{name: name, key: kv.Key}
		var rest []*ast.MappingValueNode
		for _, s := range settings.Values {
			if s.Key.String() == "type" {
				p.typ, p.typeNode = scalar(s.Value), s.Value
				continue
			}
			rest = append(rest, s)
		}
		if p.typ == "" {
			return errorAt(d.file, kv.Key, path, "missing `type:` (one of the provider types, such as vault or keyring)")
		}
		p.settings = ast.Mapping(settings.Start, settings.IsFlowStyle, rest...)
		d.providers = append(d.providers, p)
	}
	return nil
}

func (d *document) splitEnvironments() error {
	if d.top.Environments == nil || isNull(d.top.Environments) {
		return &Error{Pos: position(d.file, d.root), Msg: "no `environments:`; define at least one, such as dev"}
	}
	m, ok := d.top.Environments.(*ast.MappingNode)
	if !ok {
		return errorAt(d.file, d.top.Environments, "environments", "must be a mapping of environment names to lists of sources")
	}
	for _, kv := range m.Values {
		e := &environmentNode{name: kv.Key.String(), key: kv.Key}
		path := "environments." + e.name
		if !isNull(kv.Value) {
			seq, ok := kv.Value.(*ast.SequenceNode)
			if !ok {
				return errorAt(d.file, kv.Value, path, "must be a list of sources (`- from: PROVIDER`)")
			}
			for i, item := range seq.Values {
				src, ok := item.(*ast.MappingNode)
				if !ok {
					return errorAt(d.file, item, fmt.Sprintf("%s[%d]", path, i), "must be a mapping such as `from: PROVIDER`")
				}
				e.sources = append(e.sources, src)
			}
		}
		d.environments = append(d.environments, e)
	}
	return nil
}

func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return ok
}

// scalar returns the text of a scalar node, or "" for anything else.
func scalar(n ast.Node) string {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value
	case ast.ScalarNode:
		return fmt.Sprint(v.GetValue())
	}
	return ""
}

func (d *document) provider(name string) *providerNode {
	for _, p := range d.providers {
		if p.name == name {
			return p
		}
	}
	return nil
}

func (d *document) environment(name string) *environmentNode {
	for _, e := range d.environments {
		if e.name == name {
			return e
		}
	}
	return nil
}

// checkAll checks what can be checked in every environment without
// resolving placeholders: the common keys of each source and the providers
// they name.
func (d *document) checkAll() error {
	w, err := d.decodeWatch()
	if err != nil {
		return err
	}
	if _, err := d.decodeServe(w); err != nil {
		return err
	}
	if d.top.DefaultEnvironment != "" && d.environment(d.top.DefaultEnvironment) == nil {
		return errorAt(d.file, valueOf(d.root, "default_environment", d.root), "default_environment",
			"environment %q is not defined under environments: (defined: %s)", d.top.DefaultEnvironment, d.environmentNames())
	}
	d.splits = map[*ast.MappingNode]split{}
	for _, e := range d.environments {
		for i, src := range e.sources {
			path := fmt.Sprintf("environments.%s[%d]", e.name, i)
			common, own, err := d.splitSource(path, src)
			if err != nil {
				return err
			}
			d.splits[src] = split{common, own}
		}
	}
	return nil
}
