package awsssm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

const (
	// batchSize is the most names GetParameters takes.
	batchSize = 10
	// pageSize is the most parameters a GetParametersByPath page holds.
	pageSize = 10
	// parallelCalls bounds the calls in flight, under Parameter Store's
	// default throughput quota of 40 calls a second.
	parallelCalls = 8
)

// param is one version of a parameter as read from the service.
type param struct {
	name, arn string
	version   int64
	value     string
}

func fromParameter(p parameter) *param {
	return &param{name: p.Name, arn: p.ARN, version: p.Version, value: p.Value}
}

// read is the outcome of reading one parameter id.
type read struct {
	p   *param
	err error
}

// listing is what a path source found.
type listing struct {
	params []*param
	err    error
}

// pathKey identifies one GetParametersByPath listing.
type pathKey struct {
	path      string
	recursive bool
}

func refsOf(p *provider, sources []*providers.Source) ([]*ref, error) {
	refs := make([]*ref, len(sources))
	for i, src := range sources {
		r, ok := src.Ref.(*ref)
		if !ok {
			return nil, fmt.Errorf("%s: source at %s was not parsed by this provider", p, src.Pos)
		}
		refs[i] = r
	}
	return refs, nil
}

// Fetch reads every source with as few calls as it can: each distinct path
// is listed, and every parameter source is read in batches of ten names,
// all at once.
func (p *provider) Fetch(ctx context.Context, sources []*providers.Source) ([]providers.Result, error) {
	c, refs, listed, reads, err := p.readSources(ctx, sources, true)
	if err != nil {
		return nil, err
	}
	results := make([]providers.Result, len(sources))
	for i, r := range refs {
		if r.path != "" {
			results[i] = p.fields(c, r, listed[pathKey{r.path, r.recursive}])
			continue
		}
		rd := reads[r.id()]
		if rd.err != nil {
			results[i].Err = p.errorf(c, r, rd.err)
			continue
		}
		results[i] = providers.Result{
			Fields:  map[string]providers.Field{providers.Plain: {Value: providers.NewSecret(rd.p.value)}},
			Version: strconv.FormatInt(rd.p.version, 10),
		}
	}
	return results, nil
}

// readSources makes the calls Fetch and Versions share: each distinct path
// is listed, and every parameter source is read in batches; decrypt says
// whether SecureString values are wanted, and KMS asked.
func (p *provider) readSources(ctx context.Context, sources []*providers.Source, decrypt bool) (*conn, []*ref, map[pathKey]listing, map[string]read, error) {
	c, err := p.client(ctx)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	refs, err := refsOf(p, sources)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	listed, err := p.listAll(ctx, c, refs, decrypt)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	var ids []string
	for _, r := range refs {
		if r.path == "" {
			ids = append(ids, r.id())
		}
	}
	reads, err := p.readAll(ctx, c, awsconf.Unique(ids), decrypt)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return c, refs, listed, reads, nil
}

func (p *provider) errorf(c *conn, r *ref, err error) error {
	verb := "get"
	if r.path != "" {
		verb = "list"
	}
	return fmt.Errorf("%s: %s %s (%s): %w", p, verb, r.describe(), c.where(), err)
}

// fields builds a path source's fields, one per parameter, named by the
// last segment of its name.
func (p *provider) fields(c *conn, r *ref, l listing) providers.Result {
	if l.err != nil {
		return providers.Result{Err: p.errorf(c, r, l.err)}
	}
	if len(l.params) == 0 {
		return providers.Result{Err: p.errorf(c, r, fmt.Errorf("%w: no parameter below %s", providers.ErrNotFound, r.path))}
	}
	fields := make(map[string]providers.Field, len(l.params))
	from := make(map[string]string, len(l.params))
	for _, prm := range l.params {
		field := prm.name[strings.LastIndex(prm.name, "/")+1:]
		if other, dup := from[field]; dup {
			return providers.Result{Err: p.errorf(c, r, fmt.Errorf(
				"%s and %s would both be the field %s; read them with separate, non-recursive `path:` sources, or with `parameter:` and `as:`",
				other, prm.name, field))}
		}
		from[field] = prm.name
		fields[field] = providers.Field{Value: providers.NewSecret(prm.value)}
	}
	return providers.Result{Fields: fields}
}

// listAll lists every distinct path of refs, all at once. An outage is
// returned; any other failure is in the path's listing.
func (p *provider) listAll(ctx context.Context, c *conn, refs []*ref, decrypt bool) (map[pathKey]listing, error) {
	var keys []pathKey
	for _, r := range refs {
		if k := (pathKey{r.path, r.recursive}); r.path != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	out := make(map[pathKey]listing, len(keys))
	var mu sync.Mutex
	parallel(len(keys), func(i int) {
		params, err := p.list(ctx, c, keys[i], decrypt)
		mu.Lock()
		out[keys[i]] = listing{params, err}
		mu.Unlock()
	})
	for _, k := range keys {
		if err := out[k].err; err != nil && wholeBackend(err) {
			return nil, p.errorf(c, &ref{path: k.path, recursive: k.recursive}, err)
		}
	}
	return out, nil
}

// list reads every page of one path, sorted by name.
func (p *provider) list(ctx context.Context, c *conn, k pathKey, decrypt bool) ([]*param, error) {
	found, err := c.ssm.getParametersByPath(ctx, k.path, k.recursive, decrypt, pageSize)
	if err != nil {
		return nil, classify(ctx, err)
	}
	out := make([]*param, len(found))
	for i, prm := range found {
		out[i] = fromParameter(prm)
	}
	slices.SortFunc(out, func(a, b *param) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// readAll reads ids (names or ARNs, with a selector or not) with
// GetParameters, ten a call, several calls at once. Errors that concern one
// parameter are in its read; an outage is returned.
func (p *provider) readAll(ctx context.Context, c *conn, ids []string, decrypt bool) (map[string]read, error) {
	out, err := awsconf.ReadBatches(batches(ids), parallelCalls,
		func(batch []string) (map[string]read, error) { return p.batch(ctx, c, batch, decrypt) },
		func(batch []string, err error) error {
			return fmt.Errorf("%s: get parameters %s (%s): %w", p, awsconf.Several(batch), c.where(), err)
		})
	if err != nil {
		return nil, err
	}
	// Reads one by one, after a refused batch, can meet an outage too; it
	// concerns every source, whichever read met it.
	for _, id := range ids {
		if err := out[id].err; err != nil && wholeBackend(err) {
			return nil, fmt.Errorf("%s: get parameter %s (%s): %w", p, id, c.where(), err)
		}
	}
	return out, nil
}

// batches splits ids into calls of at most batchSize, never two selectors
// of one parameter in the same call: GetParameters answers with the
// parameter's name, and moto leaves out the selector AWS adds, so two
// versions of one name in a call could not be told apart.
func batches(ids []string) [][]string {
	var out [][]string
	var names []map[string]bool
	for _, id := range ids {
		name := baseName(id)
		placed := false
		for i := range out {
			if len(out[i]) < batchSize && !names[i][name] {
				out[i] = append(out[i], id)
				names[i][name] = true
				placed = true
				break
			}
		}
		if !placed {
			out = append(out, []string{id})
			names = append(names, map[string]bool{name: true})
		}
	}
	return out
}

// baseName is the parameter an id designates, without its selector, in
// the form GetParameters answers with: the name, also for an ARN.
func baseName(id string) string {
	name, _ := splitSelector(id)
	if strings.HasPrefix(name, "arn:") {
		if _, rest, ok := strings.Cut(name, ":parameter"); ok {
			// arn:...:parameter/app/db is /app/db; arn:...:parameter/db is db.
			if strings.Count(rest, "/") > 1 {
				return rest
			}
			return strings.TrimPrefix(rest, "/")
		}
	}
	return name
}

// batch reads up to batchSize ids with one GetParameters call, or one by
// one when the call is refused.
func (p *provider) batch(ctx context.Context, c *conn, ids []string, decrypt bool) (map[string]read, error) {
	if c.noBatch.Load() {
		return p.each(ctx, c, ids, decrypt), nil
	}
	found, invalid, err := c.ssm.getParameters(ctx, ids, decrypt)
	if err != nil {
		err = classify(ctx, err)
		if wholeBackend(err) {
			return nil, err
		}
		// Refused as a whole (one name the caller may not read, or no
		// permission for the batch action, or one malformed name spoiling
		// the call): ask name by name, so that each gets its own answer.
		each := p.each(ctx, c, ids, decrypt)
		if errors.Is(err, providers.ErrDenied) && !anyDenied(each) {
			c.noBatch.Store(true)
		}
		return each, nil
	}
	out := make(map[string]read, len(ids))
	for _, prm := range found {
		got := fromParameter(prm)
		for _, id := range ids {
			if name := baseName(id); name == got.name || name == got.arn || id == got.arn {
				out[id] = read{p: got}
			}
		}
	}
	for _, bad := range invalid {
		for _, id := range ids {
			if _, done := out[id]; !done && id == bad {
				out[id] = read{err: notFound(id)}
			}
		}
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			out[id] = read{err: fmt.Errorf("%w: GetParameters returned neither the parameter nor it among the invalid ones", providers.ErrNotFound)}
		}
	}
	return out, nil
}

func notFound(id string) error {
	if _, selector := splitSelector(id); selector != "" {
		return fmt.Errorf("%w: no such parameter, or it has no version or label %s", providers.ErrNotFound, selector)
	}
	return fmt.Errorf("%w: no such parameter", providers.ErrNotFound)
}

func anyDenied(reads map[string]read) bool {
	for _, rd := range reads {
		if errors.Is(rd.err, providers.ErrDenied) {
			return true
		}
	}
	return false
}

// each reads ids with one GetParameter each.
func (p *provider) each(ctx context.Context, c *conn, ids []string, decrypt bool) map[string]read {
	out := make(map[string]read, len(ids))
	var mu sync.Mutex
	parallel(len(ids), func(i int) {
		prm, err := c.ssm.getParameter(ctx, ids[i], decrypt)
		rd := read{err: classify(ctx, err)}
		if err == nil {
			if prm == nil {
				rd.err = notFound(ids[i])
			} else {
				rd = read{p: fromParameter(*prm)}
			}
		}
		mu.Lock()
		out[ids[i]] = rd
		mu.Unlock()
	})
	return out
}

// parallel runs f(0) ... f(n-1), at most parallelCalls at a time.
func parallel(n int, f func(i int)) { awsconf.Parallel(n, parallelCalls, f) }
