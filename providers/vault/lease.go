package vault

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secretrun/secretrun/providers"
)

// Leased secrets and rotation
//
// A path outside KV mounts (database/creds/app, aws/creds/deploy) is read
// as a leased secret: every read creates new credentials with a lease that
// Vault revokes when it ends. So the provider holds on to what it read:
//
//   - Fetch returns the held credentials while their lease is healthy, so a
//     re-fetch caused by another source changing does not mint new ones; a
//     renewal that is due happens first, with Result.Expires moved on.
//   - Versions labels a leased source "lease-N", N counting the leases read
//     for that path. When about two thirds of the lease's TTL has passed
//     (with jitter) it renews the lease and keeps the label. When the lease
//     cannot be renewed far enough (its max TTL is near), is not renewable,
//     or renewal is refused, the lease is marked stale and the label becomes
//     "lease-(N+1)": the label the next Fetch will carry, so the watch loop
//     sees one change, fetches once, and the labels agree again.
//   - Fetch of a stale path reads fresh credentials. The superseded lease is
//     not revoked then (the running child may still use it until it is
//     restarted); it runs out by itself, or is revoked on Close.
//   - Close revokes every lease still alive (revoke_on_exit, default true),
//     and the tokens the provider logged in for.
//
// Renewal happens only when Versions is called, so the watch interval must
// be well below a third of the shortest lease TTL; Result.Expires tells the
// caller when each lease ends.

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

func (l *leaseState) label() string {
	if l.stale {
		return "lease-" + strconv.Itoa(l.gen+1)
	}
	return "lease-" + strconv.Itoa(l.gen)
}

func (l *leaseState) result() providers.Result {
	return providers.Result{Fields: cloneFields(l.fields), Version: l.label(), Expires: l.expires}
}

// readLeased reads a path of a non-KV engine, holding on to its lease.
func (p *provider) readLeased(ctx context.Context, c *api.Client, path string, m mountInfo) (providers.Result, error) {
	// Renew first when due, so that a caller that only fetches (at the
	// lease's Expires, say) keeps the lease alive too.
	if _, err := p.leaseLabel(ctx, c, path); err != nil {
		return providers.Result{}, err
	}
	p.leaseMu.Lock()
	if l := p.leases[path]; l != nil && l.healthy(p.now()) {
		res := l.result()
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
	return l.result(), nil
}

// leaseLabel renews the lease of path when it is due and returns its label.
// A path never read, or read without a lease, cannot be told: "".
func (p *provider) leaseLabel(ctx context.Context, c *api.Client, path string) (string, error) {
	p.leaseMu.Lock()
	l := p.leases[path]
	if l == nil {
		p.leaseMu.Unlock()
		return "", nil
	}
	now := p.now()
	due := !l.stale && !l.renewAt.IsZero() && !now.Before(l.renewAt)
	if due && (!l.renewable || !now.Before(l.expires)) {
		l.stale = true
		due = false
	}
	id, inc := l.id, l.increment
	p.leaseMu.Unlock()
	if !due {
		p.leaseMu.Lock()
		defer p.leaseMu.Unlock()
		return l.label(), nil
	}

	if err := p.acquire(ctx); err != nil {
		return "", err
	}
	s, err := c.Sys().RenewWithContext(ctx, id, int(inc/time.Second))
	p.release()
	if err != nil && (isUnavailable(err) || ctx.Err() != nil) {
		// An outage is not a reason to rotate: the caller keeps the last
		// good values and retries.
		return "", p.describe(ctx, "renew the lease of "+path, err)
	}
	p.leaseMu.Lock()
	defer p.leaseMu.Unlock()
	if p.leases[path] != l {
		return p.leases[path].label(), nil
	}
	now = p.now()
	switch {
	case err != nil || s == nil:
		// Revoked, expired or otherwise refused: fetch new credentials.
		l.stale = true
	default:
		granted := time.Duration(s.LeaseDuration) * time.Second
		l.expires = now.Add(granted)
		if granted*3 < inc*2 {
			// Capped by the max TTL: this lease ends soon whatever we do.
			l.stale = true
		} else {
			l.renewAt = now.Add(renewPoint(granted))
		}
	}
	return l.label(), nil
}

// Close revokes the leases read during the run and the tokens obtained by
// logging in, unless revoke_on_exit is false. Revoking a token revokes the
// leases created with it, which covers a token whose policies do not allow
// revoking single leases.
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
	c, err := p.apiClient()
	if err != nil {
		return err
	}

	p.leaseMu.Lock()
	held := p.held
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
			err := c.Sys().RevokeWithContext(ctx, h.id)
			p.release()
			switch {
			case err == nil, statusOf(err) == 400:
				// 400: the lease is already gone.
				return
			case statusOf(err) == 403 && tok.ours:
				// A token of ours is revoked below with all its
				// leases, whatever its policies allow here.
				return
			}
			fail(fmt.Errorf("%w; it expires by itself at %s", p.describe(ctx, "revoke the lease of "+h.path, err), h.expires.Format(time.RFC3339)))
		}()
	}
	wg.Wait()

	if tok.ours {
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

func revokeSelf(ctx context.Context, c *api.Client) error {
	return c.Auth().Token().RevokeSelfWithContext(ctx, "")
}
