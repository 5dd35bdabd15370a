package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// Leased secrets and rotation
//
// A path outside KV mounts (database/creds/app, aws/creds/deploy) is read
// as a leased secret: every read creates new credentials with a lease that
// Vault revokes when it ends. So the provider holds on to what it read, and
// the run engine keeps it alive through providers.Holder:
//
//   - Fetch returns the held credentials while their lease is healthy (not
//     marked stale, not expired), so a re-fetch caused by another source
//     changing does not mint new ones. It renews nothing.
//   - Renew, which the engine calls whenever the last Renewal.Next is due
//     for as long as the child runs, first renews the token once it is past
//     about two thirds of its TTL: a token the user gave is looked up once
//     to learn its TTL and is renewed while it can be; a token this provider
//     logged in for is replaced by a new login when it cannot be renewed far
//     enough, which marks the leases read with the old one stale. Then it
//     renews, concurrently, every lease past about two thirds of its TTL
//     (with jitter). A lease that cannot be renewed far enough (its max TTL
//     is near), is not renewable, or whose renewal Vault refuses is marked
//     stale and listed in Renewal.Expiring until a Fetch replaces it. An
//     unreachable Vault is an error that gives nothing up: the engine
//     retries. With nothing due, Renew sends no request.
//   - Versions is a query: it labels a leased source "lease-N", N counting
//     the leases read for that path, and "lease-(N+1)" once the lease is
//     stale or expired: the label the next Fetch carries, so the watch loop
//     sees one change, fetches once, and the labels agree again.
//   - Fetch of a stale path reads fresh credentials. The superseded lease is
//     not revoked then (the running child may still use it until it is
//     restarted); it runs out by itself, or is revoked on Close.
//   - Close revokes every lease read during the run that is still alive, and
//     the tokens the provider logged in for, unless revoke_on_exit is false.
//     A token the user gave is never revoked. HoldsLeases tells the engine
//     whether the child uses anything Renew or Close would act on; when it
//     does not, the engine may call Close before it replaces itself with
//     the child, so a login token does not outlive the exec.

// leaseState is the current lease of one path.
type leaseState struct {
	id        string
	renewable bool
	// increment is the lease's TTL when read, asked for on each renewal.
	increment time.Duration
	expires   time.Time
	renewAt   time.Time
	gen       int
	tokenGen  int
	stale     bool
	fields    map[string]providers.Field
	path      string
}

// healthy reports whether the lease can still be handed out at now. A lease
// without a duration does not expire.
func (l *leaseState) healthy(now time.Time) bool {
	return !l.stale && (l.expires.IsZero() || now.Before(l.expires))
}

// alive reports whether Vault still honours the lease at now, as far as the
// provider knows.
func (l *leaseState) alive(now time.Time) bool {
	return l.expires.IsZero() || now.Before(l.expires)
}

// label is "lease-N" while the lease is healthy and "lease-(N+1)", the
// label of the credentials the next Fetch reads, once it is not.
func (l *leaseState) label(now time.Time) string {
	if !l.healthy(now) {
		return "lease-" + strconv.Itoa(l.gen+1)
	}
	return "lease-" + strconv.Itoa(l.gen)
}

func (l *leaseState) result(now time.Time) providers.Result {
	return providers.Result{Fields: cloneFields(l.fields), Version: l.label(now), Expires: l.expires}
}

// readLeased reads a path of a non-KV engine, holding on to its lease.
func (p *provider) readLeased(ctx context.Context, c *client, path string, m mountInfo) (providers.Result, error) {
	p.leaseMu.Lock()
	if l := p.leases[path]; l != nil && l.healthy(p.now()) {
		res := l.result(p.now())
		p.leaseMu.Unlock()
		return res, nil
	}
	p.leaseMu.Unlock()
	tokenGen := p.currentTokenGen()
	s, err := p.logicalRead(ctx, c, path, m)
	if err != nil {
		return providers.Result{}, err
	}
	f := fields(s.Data)
	if s.LeaseID == "" {
		return providers.Result{Fields: f}, nil
	}
	ttl := time.Duration(s.LeaseDuration) * time.Second
	now := p.now()
	l := &leaseState{
		id:        s.LeaseID,
		renewable: s.Renewable,
		increment: ttl,
		gen:       1,
		tokenGen:  tokenGen,
		fields:    f,
		path:      path,
	}
	if ttl > 0 {
		l.expires = now.Add(ttl)
		l.renewAt = now.Add(renewPoint(ttl))
	}
	p.leaseMu.Lock()
	defer p.leaseMu.Unlock()
	if prev := p.leases[path]; prev != nil {
		l.gen = prev.gen + 1
	}
	p.leases[path] = l
	p.held = append(p.held, l)
	return l.result(now), nil
}

// leaseLabel is the label of the lease held for path, without contacting
// Vault. A path never read, or read without a lease, cannot be told: "".
func (p *provider) leaseLabel(path string) string {
	p.leaseMu.Lock()
	defer p.leaseMu.Unlock()
	l := p.leases[path]
	if l == nil {
		return ""
	}
	return l.label(p.now())
}

// HoldsLeases reports whether a lease read during the run is alive and
// something is still to be done about it while the child uses it: renewing
// it, or revoking it on exit. The login token does not count.
func (p *provider) HoldsLeases() bool {
	now := p.now()
	p.leaseMu.Lock()
	defer p.leaseMu.Unlock()
	for _, l := range p.held {
		if l.alive(now) && (p.revoke || l.renewable && !l.stale) {
			return true
		}
	}
	return false
}

// Renew renews the token and then the leases that are past their renewal
// point, and reports when to call it again and which leases are expiring;
// see the comment at the top of this file.
func (p *provider) Renew(ctx context.Context) (providers.Renewal, error) {
	if err := p.renewToken(ctx); err != nil {
		return providers.Renewal{}, err
	}
	if err := p.renewLeases(ctx); err != nil {
		return providers.Renewal{}, err
	}
	return p.renewal(), nil
}

// renewToken learns the token's TTL once and renews or replaces the token
// when it is due, never holding authMu while Vault answers.
func (p *provider) renewToken(ctx context.Context) error {
	p.authMu.Lock()
	t := p.tok
	lookup := t != nil && !t.known && !t.noLookup
	p.authMu.Unlock()
	if t == nil {
		// Nothing fetched yet, or closed.
		return nil
	}
	if lookup {
		gen, err := p.learnToken(ctx)
		if err != nil {
			if ctx.Err() != nil || isUnavailable(err) {
				return p.describe(ctx, "look up the token", err)
			}
			// A token that may not look itself up (rare) is simply not
			// renewed.
			p.authMu.Lock()
			if p.tok != nil && p.tok.gen == gen {
				p.tok.noLookup = true
			}
			p.authMu.Unlock()
		}
	}
	return p.refreshToken(ctx)
}

// renewLeases renews every current lease past its renewal point, at most
// max_concurrency at a time. A lease that cannot be renewed is marked
// stale; an outage leaves it as it was and is returned.
func (p *provider) renewLeases(ctx context.Context) error {
	now := p.now()
	var due []*leaseState
	p.leaseMu.Lock()
	for _, l := range p.leases {
		if l.stale || l.renewAt.IsZero() || now.Before(l.renewAt) {
			continue
		}
		if !l.renewable || !now.Before(l.expires) {
			l.stale = true
			continue
		}
		due = append(due, l)
	}
	p.leaseMu.Unlock()
	if len(due) == 0 {
		return nil
	}
	c, err := p.sharedClient()
	if err != nil {
		return err
	}
	errs := make([]error, len(due))
	var wg sync.WaitGroup
	for i, l := range due {
		wg.Go(func() { errs[i] = p.renewLease(ctx, c, l) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			// The same outage, as many times as there are leases: once is
			// enough.
			return err
		}
	}
	return nil
}

// renewLease asks Vault for another TTL of l.
func (p *provider) renewLease(ctx context.Context, c *client, l *leaseState) error {
	op := "renew the lease of " + l.path
	if err := p.acquire(ctx); err != nil {
		return fmt.Errorf("vault %q: %s: %w", p.name, op, err)
	}
	s, err := c.renewLease(ctx, l.id, int(l.increment/time.Second))
	p.release()
	if err != nil && (isUnavailable(err) || ctx.Err() != nil) {
		// An outage is not a reason to rotate: the caller keeps the last
		// good values and retries.
		return p.describe(ctx, op, err)
	}
	p.leaseMu.Lock()
	defer p.leaseMu.Unlock()
	now := p.now()
	switch {
	case err != nil || s == nil:
		// Revoked, expired or otherwise refused: fetch new credentials.
		l.stale = true
	default:
		granted := time.Duration(s.LeaseDuration) * time.Second
		l.expires = now.Add(granted)
		if granted*3 < l.increment*2 {
			// Capped by the max TTL: this lease ends soon whatever we do.
			l.stale = true
		} else {
			l.renewAt = now.Add(renewPoint(granted))
		}
	}
	return nil
}

// renewal is what is held now: the earliest renewal point of the token and
// of the healthy leases, and the current leases that are stale.
func (p *provider) renewal() providers.Renewal {
	var r providers.Renewal
	earliest := func(t time.Time) {
		if !t.IsZero() && (r.Next.IsZero() || t.Before(r.Next)) {
			r.Next = t
		}
	}
	p.authMu.Lock()
	if p.tok != nil {
		earliest(p.tok.renewAt)
	}
	p.authMu.Unlock()
	now := p.now()
	p.leaseMu.Lock()
	for path, l := range p.leases {
		switch {
		case l.stale:
			r.Expiring = append(r.Expiring, providers.Expiring{Ref: path, Expires: l.expires})
		case l.alive(now):
			earliest(l.renewAt)
		}
	}
	p.leaseMu.Unlock()
	slices.SortFunc(r.Expiring, func(a, b providers.Expiring) int { return strings.Compare(a.Ref, b.Ref) })
	return r
}

// Close revokes the leases read during the run and the tokens obtained by
// logging in, unless revoke_on_exit is false. Revoking a token revokes the
// leases created with it, which covers a token whose policies do not allow
// revoking single leases. A token the user gave is not revoked, nor one
// kept in the keyring for later runs (cache: keyring). Close sends
// nothing when nothing was fetched, and a second call has nothing left to
// give back.
func (p *provider) Close(ctx context.Context) error {
	if !p.revoke {
		return nil
	}
	p.authMu.Lock()
	tok := p.tok
	oldTokens := p.oldTokens
	p.oldTokens = nil
	p.authMu.Unlock()
	if tok == nil {
		return nil
	}
	c, err := p.sharedClient()
	if err != nil {
		return err
	}

	now := p.now()
	var held []*leaseState
	p.leaseMu.Lock()
	for _, l := range p.held {
		// One that ran out is gone already, and so are its credentials.
		if l.alive(now) {
			held = append(held, l)
		}
	}
	p.held = nil
	p.leases = map[string]*leaseState{}
	p.leaseMu.Unlock()

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for _, h := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.acquire(ctx); err != nil {
				fail(err)
				return
			}
			err := c.revokeLease(ctx, h.id)
			p.release()
			switch {
			case err == nil, statusOf(err) == 400:
				// 400: the lease is already gone.
				return
			case statusOf(err) == 403 && tok.ours && tok.cache == nil:
				// A token of ours is revoked below with all its
				// leases, whatever its policies allow here; a cached
				// one is not.
				return
			}
			fail(fmt.Errorf("%w; it expires by itself at %s", p.describe(ctx, "revoke the lease of "+h.path, err), h.expires.Format(time.RFC3339)))
		}()
	}
	wg.Wait()

	if tok.ours && tok.cache == nil {
		if err := revokeSelf(ctx, c); err != nil {
			fail(p.describe(ctx, "revoke the token from "+tok.origin, err))
		}
		p.authMu.Lock()
		if p.tok == tok {
			// A later call logs in afresh.
			p.tok = nil
		}
		p.authMu.Unlock()
	}
	for _, old := range oldTokens {
		oc, err := p.newClient(old)
		if err == nil {
			err = revokeSelf(ctx, oc)
		}
		if err != nil && statusOf(err) != 403 {
			// 403: already expired, and its leases with it.
			fail(p.describe(ctx, "revoke a replaced token", err))
		}
	}
	return errors.Join(errs...)
}

func revokeSelf(ctx context.Context, c *client) error {
	return c.revokeSelf(ctx)
}
