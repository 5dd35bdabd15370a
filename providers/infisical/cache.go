package infisical

import (
	"context"
	"time"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/logincache"
)

// The login cache
//
// With `cache: keyring` in the auth block, the access token of a universal
// auth or Kubernetes login is kept in the OS keyring (logincache), and the
// next run with the same identity and credential starts with it instead of
// logging in, while more than logincache.Margin of its TTL and max TTL is
// left. It is not asked about first: a request the server refuses logs in
// again by itself (withSession), and that login replaces the kept token.
// Renewals are written back, so the next run knows the new expiry.

// loginCache is where the token of a login with creds is kept; nil when
// the cache is off or the credentials are a static access token.
func (p *provider) loginCache(creds credentials) *logincache.Cache {
	if !p.auth.cached() || creds.method == authToken {
		return nil
	}
	secret := creds.clientSecret
	if creds.method == authKubernetes {
		secret = creds.jwt
	}
	return logincache.New(p.env.Keyring, p.cacheIdentity(creds), logincache.Digest(creds.method, secret.Reveal()))
}

// cacheIdentity is everything besides the credential that decides which
// identity a login is for.
func (p *provider) cacheIdentity(creds credentials) logincache.Identity {
	subject := creds.clientID
	if creds.method == authKubernetes {
		subject = creds.identityID
	}
	return logincache.Identity{
		Type:    TypeName,
		Address: p.siteURL,
		Parts:   []string{creds.method, subject, p.organizationSlug()},
	}
}

// start gives a new session its first token: the kept one if it will do,
// else a login.
func (p *provider) start(ctx context.Context, s *session) error {
	if t, ok := p.loginCache(s.creds).Load(time.Now()); ok {
		s.setCached(t)
		return nil
	}
	return p.login(ctx, s)
}

// recache keeps the session's token, just obtained or renewed, for later
// runs.
func (p *provider) recache(s *session) {
	c := p.loginCache(s.creds)
	if c == nil {
		return
	}
	if _, err := c.Store(s.cachedForm()); err != nil {
		p.env.Warn("infisical %q: auth: cache: the keyring did not take the access token (%v)", p.name, err)
	}
}

// setCached makes a kept token the session's, as setToken does for a
// login's.
func (s *session) setCached(t logincache.Token) {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	s.token = t.Value.Reveal()
	s.renewed = t.Expires.Add(-t.TTL)
	s.issued = t.Issued
	s.generation++
	s.ttl = t.TTL
	s.maxTTL = t.MaxTTL
}

// cachedForm is what the cache keeps of the session's token.
func (s *session) cachedForm() logincache.Token {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	t := logincache.Token{Value: providers.NewSecret(s.token), TTL: s.ttl, Issued: s.issued, MaxTTL: s.maxTTL}
	if s.ttl > 0 {
		t.Expires = s.renewed.Add(s.ttl)
	}
	return t
}

// organizationSlug is the sub-organization a login is scoped to.
func (p *provider) organizationSlug() string {
	if p.auth.OrganizationSlug != "" {
		return p.auth.OrganizationSlug
	}
	return p.env.Getenv("INFISICAL_AUTH_ORGANIZATION_SLUG")
}

// cached reports whether the login's token is kept in the keyring.
func (a authSettings) cached() bool {
	on, _ := logincache.Enabled(a.Cache)
	return on
}

// forgetCached removes the cached access token of the credentials in use,
// for `secretrun logout`, and reports whether there was one. The token is
// left to expire: it is only good for the identity's own reads.
func (p *provider) forgetCached() bool {
	if !p.auth.cached() {
		return false
	}
	creds, err := p.credentials()
	if err != nil || creds.method == authToken {
		return false
	}
	_, err = logincache.Forget(p.env.Keyring, p.cacheIdentity(creds))
	return err == nil
}
