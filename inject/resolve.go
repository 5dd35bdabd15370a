// Package inject turns fetched secrets into a child process's environment
// and runs the child: replacing secretrun with it when nothing needs
// supervising, or supervising it (signals, exit status, reaping as PID 1,
// restarts on rotation) when something does.
package inject

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/secretrun/secretrun/providers"
)

// Variable is one variable for the child and where it came from.
type Variable struct {
	Name  string
	Value providers.Secret
	// Source is the config entry that gave the value.
	Source *providers.Source
	// Field is the secret's field that holds the value (providers.Plain for
	// a plain secret).
	Field string
	// Version is the version that was read, when the backend has one.
	Version string
	// Overrides lists the earlier sources whose value for Name this one
	// replaced.
	Overrides []*providers.Source
	// File makes the variable a memory-only file: Value is the file's
	// contents, and the child's variable holds Path, which opens it.
	File bool
	// Path is the path of the file once it is made; see File.
	Path string
	// Hidden keeps the variable out of the child's environment (a source
	// with env: false): it is there for templates.
	Hidden bool
	// Template is the template a file was rendered from. Source then
	// stands for the template (provider "template", ref files.NAME), and
	// Field and Version are empty.
	Template Template
}

// Origin describes where the value came from, without the value:
// `vault "prod" secret/myapp#api_key (secretrun.yaml:12:7)`.
func (v Variable) Origin() string {
	ref := v.Source.Ref.String()
	s := v.Source.Provider + " " + ref
	if v.Field != providers.Plain && !strings.HasSuffix(ref, "/"+v.Field) {
		s += "#" + v.Field
	}
	if v.Version != "" {
		s += "@" + v.Version
	}
	return s
}

// Pos is where the variable is defined: its source's position, or its
// template's.
func (v Variable) Pos() string { return v.Source.Pos }

// Secrets are the variables of one resolution, in the order they were first
// defined, with later sources having replaced the values of earlier ones.
type Secrets struct {
	Vars []Variable
	// Results are the raw results per source, in source order, for change
	// detection.
	Results []providers.Result
}

// Values returns every value, for masking.
func (s *Secrets) Values() []providers.Secret {
	out := make([]providers.Secret, len(s.Vars))
	for i, v := range s.Vars {
		out[i] = v.Value
	}
	return out
}

// Resolve fetches every source, each provider's sources in one concurrent
// call, and maps their fields to variables. It is all or nothing: any
// failure of a required source is an error naming the source, and no
// variables are returned.
func Resolve(ctx context.Context, sources []*providers.Source, provs map[string]providers.Provider) (*Secrets, error) {
	results, err := fetchAll(ctx, sources, provs)
	if err != nil {
		return nil, err
	}
	return Assemble(sources, results)
}

// fetchAll calls each provider once with all of its sources, concurrently,
// and returns the results in source order.
func fetchAll(ctx context.Context, sources []*providers.Source, provs map[string]providers.Provider) ([]providers.Result, error) {
	byProvider := map[string][]int{}
	var order []string
	for i, src := range sources {
		if _, seen := byProvider[src.Provider]; !seen {
			order = append(order, src.Provider)
		}
		byProvider[src.Provider] = append(byProvider[src.Provider], i)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	results := make([]providers.Result, len(sources))
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for n, name := range order {
		idx := byProvider[name]
		p, ok := provs[name]
		if !ok {
			return nil, fmt.Errorf("provider %q is not configured", name)
		}
		fetch := func() {
			batch := make([]*providers.Source, len(idx))
			for j, i := range idx {
				batch[j] = sources[i]
			}
			got, err := p.Fetch(ctx, batch)
			if err == nil && len(got) != len(batch) {
				err = fmt.Errorf("provider %q returned %d results for %d sources", name, len(got), len(batch))
			}
			if err != nil {
				errs[n] = fmt.Errorf("%s: %w", batch[0].Pos, err)
				cancel() // all or nothing: the others need not finish
				return
			}
			for j, i := range idx {
				results[i] = got[j]
			}
		}
		if len(order) == 1 {
			// The common case, one backend, runs on this goroutine: a
			// new one would start on a small stack for the fetch to grow
			// again and wake a second thread, ≈ 1 ms of a start here.
			fetch()
			break
		}
		wg.Go(fetch)
	}
	wg.Wait()
	// The first provider in config order whose failure is not just the
	// cancellation caused by another's failure.
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = err
		}
	}
	return results, first
}

// Assemble maps fetched results to variables, in source order, later
// sources winning.
func Assemble(sources []*providers.Source, results []providers.Result) (*Secrets, error) {
	s := &Secrets{Results: results}
	index := map[string]int{}
	for i, src := range sources {
		r := results[i]
		if r.Err != nil {
			if src.Optional && errors.Is(r.Err, providers.ErrNotFound) {
				continue
			}
			return nil, fmt.Errorf("%s: %w", src.Pos, r.Err)
		}
		vars, err := selectFields(src, r)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", src.Pos, src.Provider, src.Ref, err)
		}
		for _, v := range vars {
			v.Hidden = src.NoEnv
			s.add(v, index)
		}
	}
	return s, nil
}

// add puts v after the variables defined so far, or in place of the one
// of the same name: the later definition wins.
func (s *Secrets) add(v Variable, index map[string]int) {
	if at, ok := index[v.Name]; ok {
		v.Overrides = s.Vars[at].Overrides
		if s.Vars[at].Source != nil {
			v.Overrides = append(v.Overrides, s.Vars[at].Source)
		}
		s.Vars[at] = v
		return
	}
	index[v.Name] = len(s.Vars)
	s.Vars = append(s.Vars, v)
}

// selectFields applies a source's keys, map, prefix and as to its fields.
func selectFields(src *providers.Source, r providers.Result) ([]Variable, error) {
	fieldNames := make([]string, 0, len(r.Fields))
	for name := range r.Fields {
		fieldNames = append(fieldNames, name)
	}
	sort.Strings(fieldNames)
	_, plain := r.Fields[providers.Plain]
	plain = plain && len(r.Fields) == 1

	variable := func(name, field string) Variable {
		return Variable{Name: name, Value: r.Fields[field].Value, Source: src, Field: field, Version: r.Version}
	}
	missing := func(field string) error {
		if field == providers.Plain {
			return fmt.Errorf("\"\" names a plain secret's one value, but this secret has fields (%s): name one of them", strings.Join(fieldNames, ", "))
		}
		return fmt.Errorf("field %q: %w (the secret has: %s)", field, providers.ErrNotFound, strings.Join(fieldNames, ", "))
	}
	var vars []Variable
	for _, f := range src.Files {
		if _, ok := r.Fields[f.Field]; !ok {
			return nil, missing(f.Field)
		}
		v := variable(f.Var, f.Field)
		v.File = true
		vars = append(vars, v)
	}
	switch {
	case plain && src.As == "" && len(vars) > 0:
		return vars, nil
	case plain && src.As == "":
		return nil, errors.New("the secret is a plain value, not a set of fields: name its variable with `as: NAME`, or make it a file with `files: {NAME: \"\"}`")
	case plain:
		return append(vars, variable(src.As, providers.Plain)), nil
	case src.As != "":
		return nil, fmt.Errorf("`as` names a plain secret's variable, but this secret has fields (%s): select them with keys, map or prefix", strings.Join(fieldNames, ", "))
	}

	for _, m := range src.Map {
		if _, ok := r.Fields[m.Field]; !ok {
			return nil, missing(m.Field)
		}
		vars = append(vars, variable(m.Var, m.Field))
	}
	selected := src.Keys
	if len(src.Keys) == 0 && len(src.Map) == 0 && len(src.Files) == 0 {
		selected = fieldNames
	}
	var invalid []string
	for _, field := range selected {
		f, ok := r.Fields[field]
		switch {
		case !ok:
			return nil, missing(field)
		case f.Nested:
			return nil, fmt.Errorf("field %q holds an object or a list: map it to a variable explicitly (map: {VAR: %s}) or select other keys", field, field)
		}
		name := src.Prefix + field
		if !validName(name) {
			invalid = append(invalid, name)
			continue
		}
		vars = append(vars, variable(name, field))
	}
	if len(invalid) > 0 {
		return nil, fmt.Errorf("these names are not valid environment variable names: %s; rename them with map: {NEW_NAME: field} or select other keys", strings.Join(invalid, ", "))
	}
	return vars, nil
}

func validName(name string) bool {
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, c := range []byte(name) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
