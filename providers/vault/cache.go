package vault

import (
	"context"
	"errors"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/logincache"
)

// The login cache
//
// With `cache: keyring` in the auth block, the token an approle, jwt or
// kubernetes login returns is kept in the OS keyring (logincache) and the
// next run with the same credential takes it instead of logging in, as
// long as it has more than logincache.Margin left. Such a token is not
// revoked on exit; the leases read with it still are. Vault is not asked
// whether a cached token is still valid before it is used: the first
// request finds out. When Vault rejects it (revoked, or expired ahead of
// its TTL), the item is dropped and Fetch logs in and reads again, so the
// run goes on as if there had been no cache.

// cacheIdentity is everything besides the credential that decides which
// token a login returns.
func (p *provider) cacheIdentity() logincache.Identity {
	a := p.auth
	return logincache.Identity{
		Type:    TypeName,
		Address: p.conn.address,
		Parts:   []string{p.conn.namespace, a.mount(), a.method(), a.RoleID, a.Role, a.Audience},
	}
}

// tokenFromCache is the state of a token taken from the cache, as
// tokenFromLogin would have made it when it was issued.
func (p *provider) tokenFromCache(op string, t logincache.Token, cache *logincache.Cache) *tokenState {
	now := p.now()
	ts := &tokenState{
		token:     t.Value.Reveal(),
		origin:    op + ", kept in the keyring",
		ours:      true,
		known:     true,
		renewable: t.Renewable,
		increment: t.TTL,
		policies:  t.Policies,
		expires:   t.Expires,
		cache:     cache,
		fromCache: true,
	}
	// Renewal is due at about two thirds of the TTL, counted from when
	// the token was issued or last renewed.
	elapsed := t.TTL - t.Expires.Sub(now)
	ts.renewAt = now.Add(renewPoint(t.TTL) - elapsed)
	return ts
}

// keep stores a new token in the cache. A token the keyring does not take
// stays uncached, so it is revoked on exit as without the cache.
func (p *provider) keep(cache *logincache.Cache, t *tokenState) {
	kept, err := cache.Store(cachedForm(t))
	if err != nil {
		p.env.Warn("vault %q: auth: cache: the keyring did not take the token (%v); it is revoked on exit", p.name, err)
	}
	if kept {
		t.cache = cache
	}
}

// cachedForm is what the cache keeps of t.
func cachedForm(t *tokenState) logincache.Token {
	return logincache.Token{
		Value:     providers.NewSecret(t.token),
		Expires:   t.expires,
		TTL:       t.increment,
		Renewable: t.renewable,
		Policies:  t.policies,
	}
}

// distrusted is the cached token this run gave up on, if any.
func (p *provider) distrusted() providers.Secret {
	p.authMu.Lock()
	defer p.authMu.Unlock()
	return p.distrust
}

// rejectedLocked marks t, which Vault has just refused, as run out, so
// that the next request logs in again. It returns the cache to drop the
// token from, outside the lock. Called with authMu held.
func (p *provider) rejectedLocked(t *tokenState) *logincache.Cache {
	t.expires = p.now()
	t.rejected = true
	return p.spentLocked(t)
}

// spentLocked gives up on t for later runs too: Vault refused it, or it
// cannot be renewed far enough. The next login is a real one, not t again
// from the keyring. It returns the cache to drop t from, outside the lock.
// Called with authMu held.
func (p *provider) spentLocked(t *tokenState) *logincache.Cache {
	if t.cache == nil {
		return nil
	}
	p.distrust = providers.NewSecret(t.token)
	return t.cache
}

// retryRejected reports whether a request that failed with err should be
// tried again with a new login: the token it used came from the cache and
// Vault has just rejected it. It is true at most once per run, since a
// token obtained by logging in is not from the cache.
func (p *provider) retryRejected(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil || !errors.Is(err, providers.ErrAuth) {
		return false
	}
	p.authMu.Lock()
	defer p.authMu.Unlock()
	t := p.tok
	return t != nil && t.fromCache && t.rejected
}

// recache stores a cached token's new expiry after a renewal, so that the
// next run knows it has longer to live.
func (p *provider) recache(cache *logincache.Cache, t logincache.Token) {
	if cache == nil {
		return
	}
	if _, err := cache.Store(t); err != nil {
		p.env.Warn("vault %q: auth: cache: the keyring did not take the renewed token (%v)", p.name, err)
	}
}
