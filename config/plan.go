package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/secretrun/secretrun/providers"
)

// Selection chooses which environment and scope to run.
type Selection struct {
	// Environment is --env; "" means default_environment.
	Environment string
	// Scope is --scope; "" leaves {scope} unresolvable.
	Scope string
	// Lookup reads secretrun's own environment for ${VAR}.
	Lookup func(string) (string, bool)
}

// Plan is everything needed to fetch the secrets of one environment.
type Plan struct {
	Environment string
	Scope       string
	// Sources in config order; later sources win.
	Sources []*providers.Source
	// Providers are the instances the sources use, by name.
	Providers map[string]providers.Provider
	// Types are the types of those instances, by name.
	Types map[string]string
	Watch Watch
	// Serve is `listen:` or `proxy:`.
	Serve Serve
	Mask  bool
	// Files are the memory-only files rendered from templates.
	Files []*Template
}

// Plan resolves placeholders in the chosen environment and builds its
// provider instances. No backend is contacted.
func (f *File) Plan(reg *providers.Registry, sel Selection, penv providers.Env) (*Plan, error) {
	d, err := f.document()
	if err != nil {
		return nil, err
	}
	envName := sel.Environment
	if envName == "" {
		envName = d.top.DefaultEnvironment
	}
	if envName == "" && len(d.environments) == 1 {
		envName = d.environments[0].name
	}
	if envName == "" {
		return nil, &Error{Pos: f.Name, Msg: fmt.Sprintf("no environment chosen; pass --env NAME, set SECRETRUN_ENV, or set default_environment (defined: %s)", d.environmentNames())}
	}
	env := d.environment(envName)
	if env == nil {
		return nil, &Error{Pos: f.Name, Msg: fmt.Sprintf("environment %q is not defined under environments: (defined: %s)", envName, d.environmentNames())}
	}
	for _, p := range d.providers {
		if _, ok := reg.Lookup(p.typ); !ok {
			return nil, errorAt(d.file, p.typeNode, "providers."+p.name+".type",
				"unknown provider type %q (known: %s)", p.typ, strings.Join(reg.Names(), ", "))
		}
	}

	lookup := sel.Lookup
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	x := &expander{file: d.file, lookup: lookup, env: envName, scope: sel.Scope, placeholders: true}
	plan := &Plan{Environment: envName, Scope: sel.Scope, Providers: map[string]providers.Provider{}, Types: map[string]string{}, Mask: d.top.Mask}

	global := &expander{file: d.file, lookup: lookup}
	for _, section := range []struct {
		path string
		node ast.Node
	}{{"watch", d.watch}, {"listen", d.listen}, {"proxy", d.proxy}} {
		if section.node != nil {
			if err := global.walk(section.path, section.node); err != nil {
				return nil, err
			}
		}
	}
	if plan.Watch, err = d.decodeWatch(); err != nil {
		return nil, err
	}
	if plan.Serve, err = d.decodeServe(plan.Watch); err != nil {
		return nil, err
	}

	for i, node := range env.sources {
		path := fmt.Sprintf("environments.%s[%d]", env.name, i)
		common, own, err := d.expandSource(x, path, node)
		if err != nil {
			return nil, err
		}
		p, err := d.instance(plan, reg, x, common.From, penv)
		if err != nil {
			return nil, err
		}
		src := common.source(position(d.file, node))
		src.Environment = envName
		opts := &options{file: d.file, path: path, node: own, extra: commonKeyNames}
		if src.Ref, err = p.ParseSource(src, opts); err != nil {
			return nil, located(d.file, node, path, err)
		}
		plan.Sources = append(plan.Sources, src)
	}
	if err := d.checkUnused(plan, reg, penv); err != nil {
		return nil, err
	}
	plan.Files = f.Files
	if err := checkFileNames(plan); err != nil {
		return nil, err
	}
	return plan, nil
}

// expandSource resolves the placeholders of a source and splits it. A
// source that they left as it was is split as checkAll split it.
func (d *document) expandSource(x *expander, path string, node *ast.MappingNode) (*commonKeys, *ast.MappingNode, error) {
	changes := x.changes
	if err := x.walk(path, node); err != nil {
		return nil, nil, err
	}
	if s, ok := d.splits[node]; ok && x.changes == changes {
		return s.common, s.own, nil
	}
	return d.splitSource(path, node)
}

// checkFileNames rejects a template whose variable a source of the
// environment names too: one would silently replace the other.
func checkFileNames(plan *Plan) error {
	for _, t := range plan.Files {
		for _, src := range plan.Sources {
			named := src.As == t.name
			for _, r := range append(append([]providers.Rename(nil), src.Map...), src.Files...) {
				named = named || r.Var == t.name
			}
			if named {
				return &Error{Pos: t.pos, Path: "files." + t.name,
					Msg: fmt.Sprintf("%s is also a variable of the source at %s; rename one of them", t.name, src.Pos)}
			}
		}
	}
	return nil
}

// checkUnused builds the providers the environment does not use, to report
// unknown keys and wrong types in their settings too. Their ${VAR} and
// {scope} need not resolve here, so errors in values are not reported.
func (d *document) checkUnused(plan *Plan, reg *providers.Registry, penv providers.Env) error {
	lenient := &expander{file: d.file, lookup: func(string) (string, bool) { return "", false }, placeholders: true, lenient: true}
	scratch := &Plan{Providers: map[string]providers.Provider{}, Types: map[string]string{}}
	for _, p := range d.providers {
		if _, used := plan.Providers[p.name]; used {
			continue
		}
		_, err := d.instance(scratch, reg, lenient, p.name, penv)
		var cerr *Error
		if errors.As(err, &cerr) && cerr.decoding {
			return cerr
		}
	}
	return nil
}

// instance builds the named provider once per plan.
func (d *document) instance(plan *Plan, reg *providers.Registry, x *expander, name string, penv providers.Env) (providers.Provider, error) {
	if p, ok := plan.Providers[name]; ok {
		return p, nil
	}
	pn := d.provider(name)
	path := "providers." + name
	if err := x.walk(path, pn.settings); err != nil {
		return nil, err
	}
	typ, _ := reg.Lookup(pn.typ)
	p, err := typ.New(name, &options{file: d.file, path: path, node: pn.settings, extra: []string{"type"}}, penv)
	if err != nil {
		return nil, located(d.file, pn.key, path, err)
	}
	plan.Providers[name] = p
	plan.Types[name] = pn.typ
	return p, nil
}

// located gives an error from a provider the position of what it was
// checking, unless it already has one.
func located(file string, n ast.Node, path string, err error) error {
	var cerr *Error
	if errors.As(err, &cerr) {
		return cerr
	}
	if strings.HasPrefix(err.Error(), file+":") {
		// Positioned by the provider, as vault's errors are.
		return err
	}
	return errorAt(file, n, path, "%s", err)
}

func (d *document) decodeWatch() (Watch, error) {
	w := DefaultWatch
	if d.watch == nil || isNull(d.watch) {
		return w, nil
	}
	// ready: is decoded on its own, since tcp: is true or host:port.
	watchNode, readyNode := cutKey(d.watch, "ready")
	if err := decodeStrict(d.file, "watch", watchNode, &w, "ready"); err != nil {
		return w, err
	}
	switch w.OnChange {
	case "restart", "signal", "exit", "none", "rolling":
	default:
		return w, errorAt(d.file, valueOf(d.watch.(*ast.MappingNode), "on_change", d.watch), "watch.on_change",
			"unknown action %q (one of restart, rolling, signal, exit, none)", w.OnChange)
	}
	var err error
	if w.Ready, err = d.decodeReady(readyNode); err != nil {
		return w, err
	}
	m := d.watch.(*ast.MappingNode)
	if w.Interval <= 0 {
		return w, errorAt(d.file, valueOf(m, "interval", d.watch), "watch.interval", "must be a positive duration such as 30s or 500ms")
	}
	for _, f := range []struct {
		key string
		d   time.Duration
	}{{"stop_timeout", w.StopTimeout}, {"splay", w.Splay}} {
		if f.d < 0 {
			return w, errorAt(d.file, valueOf(m, f.key, d.watch), "watch."+f.key, "must not be negative")
		}
	}
	for _, f := range []struct {
		key  string
		name *string
	}{{"signal", &w.Signal}, {"stop_signal", &w.StopSignal}} {
		canonical, ok := signalName(*f.name)
		if !ok {
			return w, errorAt(d.file, valueOf(m, f.key, d.watch), "watch."+f.key,
				"unknown signal %q (one of %s; the SIG prefix is optional)", *f.name, strings.Join(signalNames, ", "))
		}
		*f.name = canonical
	}
	return w, nil
}

// signalNames are the signals `watch:` may name. The list is the same on
// every system, so a config file means the same everywhere; on Windows the
// run command reports those it cannot send.
var signalNames = []string{
	"SIGHUP", "SIGINT", "SIGQUIT", "SIGABRT", "SIGKILL", "SIGUSR1", "SIGUSR2",
	"SIGPIPE", "SIGALRM", "SIGTERM", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGWINCH",
}

// signalName returns the canonical name of a signal written as SIGHUP, HUP
// or sighup.
func signalName(s string) (string, bool) {
	n := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	for _, known := range signalNames {
		if n == known {
			return n, true
		}
	}
	return "", false
}

func reflectTypeOf[T any]() reflect.Type { return reflect.TypeOf((*T)(nil)).Elem() }

// Provider builds the one named provider instance, outside of any source,
// for commands such as `secretrun login` that act on a provider itself.
// {env} in its settings is the chosen environment, when one is.
func (f *File) Provider(reg *providers.Registry, sel Selection, name string, penv providers.Env) (providers.Provider, error) {
	d, err := f.document()
	if err != nil {
		return nil, err
	}
	pn := d.provider(name)
	if pn == nil {
		return nil, &Error{Pos: f.Name, Msg: fmt.Sprintf("provider %q is not defined under providers: (defined: %s)", name, d.providerNames())}
	}
	if _, ok := reg.Lookup(pn.typ); !ok {
		return nil, errorAt(d.file, pn.typeNode, "providers."+name+".type", "unknown provider type %q (known: %s)", pn.typ, strings.Join(reg.Names(), ", "))
	}
	env := sel.Environment
	if env == "" {
		env = d.top.DefaultEnvironment
	}
	lookup := sel.Lookup
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	x := &expander{file: d.file, lookup: lookup, env: env, scope: sel.Scope, placeholders: true}
	return d.instance(&Plan{Providers: map[string]providers.Provider{}, Types: map[string]string{}}, reg, x, name, penv)
}

// ProvidersOfType lists the names of the provider instances of one type.
func (f *File) ProvidersOfType(typ string) []string {
	d, err := parse(f.Name, f.src)
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range d.providers {
		if p.typ == typ {
			out = append(out, p.name)
		}
	}
	return out
}

// document returns the parsed file for one use that may rewrite it: the
// one Parse made, the first time, so a run parses its config only once.
func (f *File) document() (*document, error) {
	if d := f.parsed; d != nil {
		f.parsed = nil
		return d, nil
	}
	return parse(f.Name, f.src)
}
