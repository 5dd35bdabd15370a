package awssm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

const (
	// batchSize is the most secrets BatchGetSecretValue takes by id.
	batchSize = 20
	// parallelCalls bounds the calls in flight, well under the service's
	// per-second quotas.
	parallelCalls = 8
)

// value is one version of a secret as read from the service.
type value struct {
	name, arn, versionID string
	stages               []string
	str                  *string
	bin                  []byte
}

// read is the outcome of reading one secret id.
type read struct {
	v   *value
	err error
}

// Fetch reads every source with as few calls as it can: secret_prefix
// sources are listed first, then every secret at its current version is read
// in batches of 20 (a lone secret by itself), and pinned versions one by one.
func (p *provider) Fetch(ctx context.Context, sources []*providers.Source) ([]providers.Result, error) {
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	refs := make([]*ref, len(sources))
	for i, src := range sources {
		r, ok := src.Ref.(*ref)
		if !ok {
			return nil, fmt.Errorf("%s: source at %s was not parsed by this provider", p, src.Pos)
		}
		refs[i] = r
	}

	// Discovery first: the names it finds join the batches.
	listed := map[string]listing{}
	var prefixes []string
	for _, r := range refs {
		if r.prefix != "" && !slices.Contains(prefixes, r.prefix) {
			prefixes = append(prefixes, r.prefix)
		}
	}
	var mu sync.Mutex
	parallel(len(prefixes), func(i int) {
		entries, err := p.list(ctx, c, []string{prefixes[i]})
		l := listing{err: err}
		for _, e := range entries {
			if strings.HasPrefix(e.Name, prefixes[i]) {
				l.names = append(l.names, e.Name)
			}
		}
		slices.Sort(l.names)
		mu.Lock()
		listed[prefixes[i]] = l
		mu.Unlock()
	})
	for _, prefix := range prefixes {
		if err := listed[prefix].err; err != nil && wholeBackend(err) {
			return nil, fmt.Errorf("%s: list secrets %s* (%s): %w", p, prefix, c.where(), err)
		}
	}

	var current []string
	for _, r := range refs {
		switch {
		case r.prefix != "":
			current = append(current, listed[r.prefix].names...)
		case r.current():
			current = append(current, r.secret)
		}
	}
	reads, err := p.readCurrent(ctx, c, awsconf.Unique(current))
	if err != nil {
		return nil, err
	}

	pinned := map[ref]read{}
	var pins []ref
	for _, r := range refs {
		if r.prefix == "" && !r.current() {
			if _, dup := pinned[*r]; !dup {
				pinned[*r] = read{}
				pins = append(pins, *r)
			}
		}
	}
	parallel(len(pins), func(i int) {
		v, err := p.get(ctx, c, pins[i].secret, pins[i].versionID, pins[i].stage)
		mu.Lock()
		pinned[pins[i]] = read{v, err}
		mu.Unlock()
	})

	results := make([]providers.Result, len(sources))
	for i, r := range refs {
		var rd read
		switch {
		case r.prefix != "":
			results[i] = p.merge(c, sources[i], r, listed[r.prefix], reads)
			continue
		case r.current():
			rd = reads[r.secret]
		default:
			rd = pinned[*r]
		}
		if rd.err != nil {
			if wholeBackend(rd.err) {
				return nil, p.errorf(c, r, rd.err)
			}
			results[i].Err = p.errorf(c, r, rd.err)
			continue
		}
		fields, err := decode(sources[i], rd.v)
		if err != nil {
			results[i].Err = p.errorf(c, r, err)
			continue
		}
		results[i] = providers.Result{Fields: fields, Version: rd.v.versionID}
	}
	return results, nil
}

func (p *provider) errorf(c *conn, r *ref, err error) error {
	return fmt.Errorf("%s: get %s (%s): %w", p, r.describe(), c.where(), err)
}

// listing is what a secret_prefix found.
type listing struct {
	names []string
	err   error
}

// merge builds the fields of a secret_prefix source from its secrets, in
// name order; a later secret's field replaces an earlier one's.
func (p *provider) merge(c *conn, src *providers.Source, r *ref, l listing, reads map[string]read) providers.Result {
	if l.err != nil {
		return providers.Result{Err: fmt.Errorf("%s: list secrets %s* (%s): %w", p, r.prefix, c.where(), l.err)}
	}
	fields := map[string]providers.Field{}
	found := 0
	for _, name := range l.names {
		rd := reads[name]
		if errors.Is(rd.err, providers.ErrNotFound) {
			continue // deleted since it was listed
		}
		if rd.err != nil {
			return providers.Result{Err: fmt.Errorf("%s: get %s, found by %s* (%s): %w", p, name, r.prefix, c.where(), rd.err)}
		}
		found++
		one, err := decodeDiscovered(rd.v, strings.TrimPrefix(name, r.prefix))
		if err != nil {
			return providers.Result{Err: fmt.Errorf("%s: get %s, found by %s* (%s): %w", p, name, r.prefix, c.where(), err)}
		}
		for k, f := range one {
			fields[k] = f
		}
	}
	if found == 0 {
		return providers.Result{Err: fmt.Errorf("%s: list secrets %s* (%s): %w: no secret's name starts with %q", p, r.prefix, c.where(), providers.ErrNotFound, r.prefix)}
	}
	return providers.Result{Fields: fields}
}

// readCurrent reads the AWSCURRENT version of every id, batchSize ids per
// call, several calls at once. Errors that concern one secret are in its
// read; an error of the whole backend is returned.
func (p *provider) readCurrent(ctx context.Context, c *conn, ids []string) (map[string]read, error) {
	out, err := awsconf.ReadBatches(slices.Collect(slices.Chunk(ids, batchSize)), parallelCalls,
		func(batch []string) (map[string]read, error) { return p.batch(ctx, c, batch) },
		func(batch []string, err error) error {
			return fmt.Errorf("%s: get %s (%s): %w", p, awsconf.Several(batch), c.where(), err)
		})
	if err != nil {
		return nil, err
	}

	// A version without the AWSCURRENT label is not what was asked for.
	// AWS never answers so; moto does after UpdateSecretVersionStage.
	var recheck []string
	for _, id := range ids {
		if rd := out[id]; rd.err == nil && len(rd.v.stages) > 0 && !slices.Contains(rd.v.stages, stageCurrent) {
			recheck = append(recheck, id)
		}
	}
	var mu sync.Mutex
	parallel(len(recheck), func(i int) {
		v, err := p.get(ctx, c, recheck[i], "", stageCurrent)
		mu.Lock()
		out[recheck[i]] = read{v, err}
		mu.Unlock()
	})
	// Reads one by one (a refused batch, a recheck) can meet an outage too;
	// it concerns every source, whichever read met it.
	for _, id := range ids {
		if err := out[id].err; err != nil && wholeBackend(err) {
			return nil, fmt.Errorf("%s: get %s (%s): %w", p, id, c.where(), err)
		}
	}
	return out, nil
}

// batch reads up to batchSize ids with one BatchGetSecretValue call, or
// one by one when the caller may not use it. A single id is read with
// GetSecretValue: the batch call buys nothing for one secret, needs an IAM
// permission of its own, and where that is not granted costs a second round
// trip before the read that works.
func (p *provider) batch(ctx context.Context, c *conn, ids []string) (map[string]read, error) {
	if len(ids) == 1 || c.noBatch.Load() {
		return p.each(ctx, c, ids), nil
	}
	out := make(map[string]read, len(ids))
	next := ""
	for {
		resp, err := c.sm.batchGetSecretValue(ctx, ids, next)
		if err != nil {
			err = classify(ctx, err)
			if wholeBackend(err) {
				return nil, err
			}
			// Refused as a whole (no IAM permission for the batch action,
			// or one bad id spoiling the call): ask secret by secret, so
			// that each gets its own answer.
			if errors.Is(err, providers.ErrDenied) {
				c.noBatch.Store(true)
			}
			return p.each(ctx, c, ids), nil
		}
		for _, e := range resp.SecretValues {
			v := fromEntry(e)
			for _, id := range ids {
				if matches(id, v.name, v.arn) {
					out[id] = read{v: v}
				}
			}
		}
		for _, e := range resp.Errors {
			err := codeError(e.ErrorCode, e.Message)
			for _, id := range ids {
				if _, done := out[id]; !done && matches(id, e.SecretId, e.SecretId) {
					out[id] = read{err: err}
				}
			}
		}
		if resp.NextToken == "" {
			break
		}
		next = resp.NextToken
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			out[id] = read{err: fmt.Errorf("%w: BatchGetSecretValue returned neither a value nor an error for it", providers.ErrNotFound)}
		}
	}
	return out, nil
}

// each reads the current version of ids with one GetSecretValue each.
func (p *provider) each(ctx context.Context, c *conn, ids []string) map[string]read {
	out := make(map[string]read, len(ids))
	var mu sync.Mutex
	parallel(len(ids), func(i int) {
		v, err := p.get(ctx, c, ids[i], "", stageCurrent)
		mu.Lock()
		out[ids[i]] = read{v, err}
		mu.Unlock()
	})
	return out
}

// get reads one version with GetSecretValue.
func (p *provider) get(ctx context.Context, c *conn, id, versionID, stage string) (*value, error) {
	out, err := c.sm.getSecretValue(ctx, id, versionID, stage)
	if err != nil {
		return nil, classify(ctx, err)
	}
	return fromEntry(*out), nil
}

func fromEntry(e secretValue) *value {
	return &value{
		name: e.Name, arn: e.ARN, versionID: e.VersionId,
		stages: e.VersionStages, str: e.SecretString, bin: e.SecretBinary,
	}
}

// matches reports whether id, a name, a full ARN or a partial ARN (without
// the six random characters AWS appends), designates the secret.
func matches(id, name, arn string) bool {
	if id == name || id == arn {
		return true
	}
	return strings.HasPrefix(id, "arn:") && len(arn) == len(id)+7 && strings.HasPrefix(arn, id+"-")
}

// parallel runs f(0) ... f(n-1), at most parallelCalls at a time.
func parallel(n int, f func(i int)) { awsconf.Parallel(n, parallelCalls, f) }
