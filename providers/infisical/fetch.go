package infisical

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// retryPolicy is how often and how patiently a request that may succeed
// later (429, 5xx, no connection) is tried again.
type retryPolicy struct {
	attempts  int
	base, max time.Duration
}

var defaultRetry = retryPolicy{attempts: 5, base: 500 * time.Millisecond, max: 8 * time.Second}

func (r retryPolicy) delay(attempt int) time.Duration {
	d := r.base << attempt
	if d > r.max || d <= 0 {
		d = r.max
	}
	// Jitter spreads the retries of many secretrun processes started
	// together (a deployment's replicas) that were rate-limited together.
	return d/2 + rand.N(d/2+1)
}

var errTimeout = errors.New("no answer in time")

// call runs one request with retries, each attempt bounded by callTimeout.
func call[T any](ctx context.Context, p *provider, f func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		actx, cancel := context.WithTimeout(ctx, p.callTimeout)
		v, err := f(actx)
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = errTimeout
		}
		if err == nil || !retryable(err) || attempt+1 >= p.retry.attempts {
			return v, err
		}
		if err := providers.Sleep(ctx, p.retry.delay(attempt)); err != nil {
			return zero, err
		}
	}
}

func retryable(err error) bool {
	var api *apiError
	if errors.As(err, &api) {
		switch api.status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	// A certificate that does not verify will not verify on a second try.
	var req *requestError
	if errors.As(err, &req) {
		return !badCertificate(err)
	}
	return errors.Is(err, errTimeout)
}

func badCertificate(err error) bool {
	var verify *tls.CertificateVerificationError
	var authority x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &host) || errors.As(err, &invalid)
}

// describe turns a request's error into one that wraps the matching sentinel
// and says what the server said.
func describe(err error) error {
	var api *apiError
	var req *requestError
	var relogin *reloginError
	switch {
	case errors.As(err, &relogin), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, errTimeout):
		return fmt.Errorf("%w: no answer in time", providers.ErrUnavailable)
	case errors.As(err, &req):
		return fmt.Errorf("%w: %s", providers.ErrUnavailable, req.cause)
	case !errors.As(err, &api):
		return err
	}
	detail := api.Error()
	switch {
	case api.status == http.StatusUnauthorized:
		return fmt.Errorf("%w (%s)", providers.ErrAuth, detail)
	// Infisical answers 403 both for a token it cannot accept (expired,
	// malformed: error "TokenError", whose message names the token) and for
	// a lack of permission.
	case api.status == http.StatusForbidden && (api.name == "TokenError" || strings.Contains(strings.ToLower(api.message), "token")):
		return fmt.Errorf("%w (%s)", providers.ErrAuth, detail)
	case api.status == http.StatusForbidden:
		return fmt.Errorf("%w (%s); check that the machine identity is a member of the project with read access here", providers.ErrDenied, detail)
	case api.status == http.StatusNotFound:
		return fmt.Errorf("%w (%s)", providers.ErrNotFound, detail)
	case api.status == http.StatusTooManyRequests:
		return fmt.Errorf("%w: rate limited, and still after retrying with backoff (%s)", providers.ErrUnavailable, detail)
	case api.status >= 500:
		return fmt.Errorf("%w (%s)", providers.ErrUnavailable, detail)
	}
	return fmt.Errorf("request rejected (%s)", detail)
}

// fatal reports whether err concerns the whole backend rather than one
// source: Fetch then fails as a whole.
func fatal(err error) bool {
	return errors.Is(err, providers.ErrAuth) || errors.Is(err, providers.ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// fail wraps a described error with the provider, the operation and where.
func (p *provider) fail(op, path, env string, err error) error {
	var relogin *reloginError
	if errors.As(err, &relogin) {
		return relogin.err
	}
	return fmt.Errorf("infisical %q: %s %s (%s): %w", p.name, op, path, p.where(env), err)
}

// listResult is the outcome of one list request.
type listResult struct {
	secrets []rawSecret
	etag    string
	err     error
}

// getResult is the outcome of one single-secret request.
type getResult struct {
	secret rawSecret
	err    error
}

// list reads a folder. An empty answer is checked: Infisical lists a folder
// or environment that does not exist as empty, and a source that yields
// nothing is almost always a mistake in path or environment.
func (p *provider) list(ctx context.Context, s *session, q query) listResult {
	res, err := withSession(ctx, p, s, func(token string) (listResult, error) {
		return call(ctx, p, func(ctx context.Context) (listResult, error) {
			secrets, etag, err := s.api.listSecrets(ctx, token, p.projectQuery(), q, "")
			return listResult{secrets: secrets, etag: etag}, err
		})
	})
	if err != nil {
		return listResult{err: p.fail("list", q.path, q.env, describe(err))}
	}
	p.setETag(q, res.etag)
	if len(res.secrets) == 0 {
		return listResult{err: p.fail("list", q.path, q.env, p.diagnoseEmpty(ctx, s, q))}
	}
	return res
}

// diagnoseEmpty says why a list came back empty, asking for the folders of
// the path's parent when the project id is known (the folders endpoint takes
// no slug). It costs one request, and only when a source failed anyway.
func (p *provider) diagnoseEmpty(ctx context.Context, s *session, q query) error {
	if p.projectID == "" {
		return fmt.Errorf("no secrets here; check that the environment and the folder exist: %w", providers.ErrNotFound)
	}
	parent, name := "/", ""
	if q.path != "/" {
		i := strings.LastIndex(q.path, "/")
		parent, name = q.path[:i], q.path[i+1:]
		if parent == "" {
			parent = "/"
		}
	}
	folders, err := withSession(ctx, p, s, func(token string) ([]string, error) {
		return call(ctx, p, func(ctx context.Context) ([]string, error) {
			return s.api.listFolders(ctx, token, p.projectID, q.env, parent)
		})
	})
	switch {
	case errors.Is(describe(err), providers.ErrNotFound):
		return fmt.Errorf("environment %q does not exist in the project: %w", q.env, providers.ErrNotFound)
	case err != nil:
		return describe(err)
	}
	if name != "" && !slices.Contains(folders, name) {
		return fmt.Errorf("folder %s does not exist: %w", q.path, providers.ErrNotFound)
	}
	if q.imports {
		return fmt.Errorf("the folder holds no secrets and imports none: %w", providers.ErrNotFound)
	}
	return fmt.Errorf("the folder holds no secrets (imports are off): %w", providers.ErrNotFound)
}

func (p *provider) get(ctx context.Context, s *session, r *ref) getResult {
	sec, err := withSession(ctx, p, s, func(token string) (rawSecret, error) {
		return call(ctx, p, func(ctx context.Context) (rawSecret, error) {
			return s.api.retrieveSecret(ctx, token, p.projectQuery(), r)
		})
	})
	if err != nil {
		op := "read"
		if r.version != 0 {
			op = "read version " + strconv.Itoa(r.version) + " of"
		}
		return getResult{err: p.fail(op, joinPath(r.path, r.secret), r.env, describe(err))}
	}
	return getResult{secret: sec}
}

// getKey identifies one single-secret request.
type getKey struct {
	query
	secret  string
	version int
}

// Fetch reads every source concurrently, with one request per distinct
// folder listing or secret: sources that read the same folder share it.
func (p *provider) Fetch(ctx context.Context, sources []*providers.Source) ([]providers.Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	refs, err := p.refs(sources)
	if err != nil {
		return nil, err
	}
	s, err := p.session(ctx)
	if err != nil {
		return nil, err
	}
	lists := map[query]*listResult{}
	gets := map[getKey]*getResult{}
	var jobs []func()
	for _, r := range refs {
		if r.secret != "" {
			k := getKey{r.query, r.secret, r.version}
			if gets[k] == nil {
				out := &getResult{}
				gets[k] = out
				jobs = append(jobs, func() { *out = p.get(ctx, s, r) })
			}
			continue
		}
		if lists[r.query] == nil {
			out := &listResult{}
			lists[r.query] = out
			q := r.query
			jobs = append(jobs, func() { *out = p.list(ctx, s, q) })
		}
	}
	p.runAll(jobs)

	results := make([]providers.Result, len(sources))
	for i, r := range refs {
		if r.secret != "" {
			g := gets[getKey{r.query, r.secret, r.version}]
			if g.err != nil {
				if fatal(g.err) {
					return nil, g.err
				}
				results[i].Err = g.err
				continue
			}
			name := g.secret.SecretKey
			if sources[i].As != "" {
				name = providers.Plain
			}
			results[i].Fields = map[string]providers.Field{name: {Value: providers.NewSecret(g.secret.SecretValue)}}
			results[i].Version = strconv.Itoa(g.secret.Version)
			continue
		}
		l := lists[r.query]
		if l.err != nil {
			if fatal(l.err) {
				return nil, l.err
			}
			results[i].Err = l.err
			continue
		}
		fields := map[string]providers.Field{}
		for _, sec := range l.secrets {
			if len(r.tags) > 0 && !sec.hasAnyTag(r.tags) {
				continue
			}
			fields[sec.SecretKey] = providers.Field{Value: providers.NewSecret(sec.SecretValue)}
		}
		if len(fields) == 0 {
			results[i].Err = p.fail("list", r.path, r.env, fmt.Errorf("no secret here has any of the tags %s: %w", strings.Join(r.tags, ", "), providers.ErrNotFound))
			continue
		}
		results[i].Fields = fields
		results[i].Version = strings.Trim(strings.TrimPrefix(l.etag, "W/"), `"`)
	}
	return results, nil
}

func (p *provider) refs(sources []*providers.Source) ([]*ref, error) {
	refs := make([]*ref, len(sources))
	for i, src := range sources {
		r, ok := src.Ref.(*ref)
		if !ok {
			return nil, fmt.Errorf("infisical %q: source at %s was not parsed by this provider", p.name, src.Pos)
		}
		refs[i] = r
	}
	return refs, nil
}

// runAll runs jobs, at most p.parallel at a time.
func (p *provider) runAll(jobs []func()) {
	sem := make(chan struct{}, max(p.parallel, 1))
	var wg sync.WaitGroup
	for _, job := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			job()
		})
	}
	wg.Wait()
}

func (p *provider) setETag(q query, etag string) {
	p.etagMu.Lock()
	defer p.etagMu.Unlock()
	p.etags[q] = etag
}

func (p *provider) etag(q query) string {
	p.etagMu.Lock()
	defer p.etagMu.Unlock()
	return p.etags[q]
}

// Versions asks Infisical whether each source's folder listing changed,
// sending the ETag of the last listing in If-None-Match: an unchanged folder
// costs a 304 without a body. The label is the ETag, which stands for the
// whole listing as answered (after imports and expansion), so it changes when
// an imported or referenced secret does too.
//
// A source that reads one secret is watched through its folder's listing
// (without recursion): a change to a neighbour makes it re-read for nothing,
// but the single-secret endpoint has no ETag and would return the value on
// every poll. A pinned version never changes and costs nothing. When a server
// sends no ETag, or a probe fails for one source only, the label is empty
// and the caller fetches that source and compares values instead.
func (p *provider) Versions(ctx context.Context, sources []*providers.Source) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	refs, err := p.refs(sources)
	if err != nil {
		return nil, err
	}
	s, err := p.session(ctx)
	if err != nil {
		return nil, err
	}
	type probe struct {
		label string
		err   error
	}
	probes := map[query]*probe{}
	var jobs []func()
	for _, r := range refs {
		if r.version != 0 {
			continue
		}
		q := probeQuery(r)
		if probes[q] != nil {
			continue
		}
		out := &probe{}
		probes[q] = out
		jobs = append(jobs, func() { out.label, out.err = p.probe(ctx, s, q) })
	}
	p.runAll(jobs)
	labels := make([]string, len(sources))
	for i, r := range refs {
		if r.version != 0 {
			labels[i] = "pinned:" + strconv.Itoa(r.version)
			continue
		}
		pr := probes[probeQuery(r)]
		if pr.err != nil && fatal(pr.err) {
			return nil, pr.err
		}
		labels[i] = pr.label
	}
	return labels, nil
}

func probeQuery(r *ref) query {
	q := r.query
	if r.secret != "" {
		q.recursive = false
	}
	return q
}

// probe sends one conditional list request.
func (p *provider) probe(ctx context.Context, s *session, q query) (string, error) {
	previous := p.etag(q)
	etag, err := withSession(ctx, p, s, func(token string) (string, error) {
		return call(ctx, p, func(ctx context.Context) (string, error) {
			_, etag, err := s.api.listSecrets(ctx, token, p.projectQuery(), q, previous)
			return etag, err
		})
	})
	switch {
	case errors.Is(err, errNotModified):
		return previous, nil
	case err != nil:
		return "", p.fail("check", q.path, q.env, describe(err))
	}
	p.setETag(q, etag)
	return etag, nil
}
