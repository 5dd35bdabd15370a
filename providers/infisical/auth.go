package infisical

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// credentials are what a session logs in with, and where they came from,
// for messages.
type credentials struct {
	method       string
	token        providers.Secret
	clientID     string
	clientSecret providers.Secret
	identityID   string
	jwt          providers.Secret
	origin       string
}

// storedCredentials is the keyring item that `secretrun login infisical`
// writes.
type storedCredentials struct {
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

// credentials finds what to authenticate with. Nothing is read from the
// process environment directly: Env.Getenv stands for it.
func (p *provider) credentials() (credentials, error) {
	getenv := p.env.Getenv
	if p.auth.Method == authKubernetes {
		c := credentials{method: authKubernetes, identityID: p.auth.IdentityID}
		if c.identityID == "" {
			c.identityID = getenv("INFISICAL_KUBERNETES_IDENTITY_ID")
		}
		if c.identityID == "" {
			return c, fmt.Errorf("infisical %q: kubernetes auth needs `auth.identity_id` or INFISICAL_KUBERNETES_IDENTITY_ID: %w", p.name, providers.ErrAuth)
		}
		file := p.auth.ServiceAccountTokenFile
		if file == "" {
			file = getenv("INFISICAL_KUBERNETES_SERVICE_ACCOUNT_TOKEN_PATH")
		}
		if file == "" {
			file = defaultServiceAccountTokenFile
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("infisical %q: read the kubernetes service account token: %w: %w", p.name, providers.ErrAuth, err)
		}
		c.jwt = providers.NewSecret(strings.TrimSpace(string(b)))
		c.origin = "the kubernetes service account token " + file
		return c, nil
	}
	if p.auth.Method == authAuto || p.auth.Method == authToken {
		if t := getenv("INFISICAL_TOKEN"); t != "" {
			return credentials{method: authToken, token: providers.NewSecret(t), origin: "INFISICAL_TOKEN"}, nil
		}
		if p.auth.Method == authToken {
			return credentials{}, fmt.Errorf("infisical %q: `auth.method: token` needs INFISICAL_TOKEN: %w", p.name, providers.ErrAuth)
		}
	}
	id, idVar := getenv("INFISICAL_CLIENT_ID"), "INFISICAL_CLIENT_ID"
	secret, secretVar := getenv("INFISICAL_CLIENT_SECRET"), "INFISICAL_CLIENT_SECRET"
	// The names Infisical's own SDKs and CLI read work too.
	if id == "" && secret == "" {
		id, idVar = getenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID"), "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID"
		secret, secretVar = getenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"), "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"
	}
	switch {
	case id != "" && secret != "":
		return credentials{method: authUniversal, clientID: id, clientSecret: providers.NewSecret(secret), origin: idVar + " and " + secretVar}, nil
	case id != "":
		return credentials{}, fmt.Errorf("infisical %q: %s is set but %s is not: %w", p.name, idVar, secretVar, providers.ErrAuth)
	case secret != "":
		return credentials{}, fmt.Errorf("infisical %q: %s is set but %s is not: %w", p.name, secretVar, idVar, providers.ErrAuth)
	}
	if p.env.Keyring != nil {
		item, err := p.env.Keyring.Get(KeyringService, p.siteURL)
		switch {
		case err == nil:
			var sc storedCredentials
			if err := json.Unmarshal([]byte(item.Reveal()), &sc); err != nil || sc.ClientID == "" || sc.ClientSecret == "" {
				return credentials{}, fmt.Errorf("infisical %q: the keyring item %s/%s is not what `secretrun login %s` stores; run it again: %w", p.name, KeyringService, p.siteURL, p.name, providers.ErrAuth)
			}
			return credentials{method: authUniversal, clientID: sc.ClientID, clientSecret: providers.NewSecret(sc.ClientSecret),
				origin: "the keyring (secretrun login " + p.name + ")"}, nil
		case !errors.Is(err, providers.ErrNotFound):
			return credentials{}, fmt.Errorf("infisical %q: read credentials from the keyring: %w: %w", p.name, providers.ErrAuth, err)
		}
	}
	if p.auth.Method == authUniversal {
		return credentials{}, fmt.Errorf("infisical %q: no machine identity for %s: set INFISICAL_CLIENT_ID and INFISICAL_CLIENT_SECRET, or run `secretrun login %s`: %w", p.name, p.siteURL, p.name, providers.ErrAuth)
	}
	return credentials{}, fmt.Errorf("infisical %q: no credentials for %s: set INFISICAL_TOKEN, or INFISICAL_CLIENT_ID and INFISICAL_CLIENT_SECRET, or run `secretrun login %s`: %w", p.name, p.siteURL, p.name, providers.ErrAuth)
}

// session is a login and its access token. A machine identity's token is
// renewed in the background shortly before it expires, and replaced by a new
// login when it cannot be renewed any more (its max TTL), so that a long
// watch run stays authenticated with one login.
type session struct {
	api   *client
	creds credentials

	// mu serializes logins and renewals.
	mu sync.Mutex

	// tokenMu guards the token and what is known of it, which requests
	// read while a renewal may be under way. generation counts logins, so
	// that requests that failed with the same expired token trigger one new
	// login, not many.
	tokenMu    sync.Mutex
	token      string
	generation int
	issued     time.Time     // by the last login
	renewed    time.Time     // by the last login or renewal
	ttl        time.Duration // 0: not known to expire
	maxTTL     time.Duration // 0: no limit

	// ctx ends the background renewal; done is closed when it has.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// renewalMargin is how long before its expiry a token is renewed, as
// Infisical's own clients do.
const renewalMargin = 5 * time.Second

func newSession(api *client, creds credentials) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{api: api, creds: creds, ctx: ctx, cancel: cancel}
}

// close stops the renewal and waits for it to end.
func (s *session) close() {
	s.cancel()
	if s.done != nil {
		<-s.done
	}
}

// current returns the token requests are sent with and the login it came
// from.
func (s *session) current() (string, int) {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	return s.token, s.generation
}

// setToken keeps the token of a login, or of a renewal when login is false.
func (s *session) setToken(res loginResult, login bool) {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	now := time.Now()
	s.token = res.AccessToken
	s.renewed = now
	if login {
		s.issued = now
		s.generation++
	}
	s.ttl = time.Duration(res.ExpiresIn) * time.Second
	s.maxTTL = time.Duration(res.AccessTokenMaxTTL) * time.Second
}

// renewal returns when the token is due for renewal and whether only a new
// login can replace it: Infisical refuses a renewal that would extend the
// token past its max TTL, and the renewal may run a little late. ok is false
// for a token not known to expire.
func (s *session) renewal() (at time.Time, relogin, ok bool) {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	if s.ttl <= 0 {
		return time.Time{}, false, false
	}
	at = s.renewed.Add(s.ttl - renewalMargin)
	relogin = s.maxTTL > 0 && s.issued.Add(s.maxTTL).Sub(at) < s.ttl+renewalMargin
	return at, relogin, true
}

// client returns the provider's API client, built on first use. It outlives
// sessions, and so do its kept-alive connections.
func (p *provider) client() (*client, error) {
	p.clientMu.Lock()
	defer p.clientMu.Unlock()
	if p.api == nil {
		c, err := p.newClient()
		if err != nil {
			return nil, err
		}
		p.api = c
	}
	return p.api, nil
}

// session returns the provider's session, creating it and logging in on
// first use.
func (p *provider) session(ctx context.Context) (*session, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.s != nil {
		return p.s, nil
	}
	creds, err := p.credentials()
	if err != nil {
		return nil, err
	}
	api, err := p.client()
	if err != nil {
		return nil, err
	}
	s := newSession(api, creds)
	if err := p.start(ctx, s); err != nil {
		return nil, err
	}
	if creds.method != authToken {
		s.done = make(chan struct{})
		go p.keepAlive(s)
	}
	p.s = s
	return s, nil
}

// keepAlive renews the session's token before it expires, until the session
// is closed. When a renewal and the new login it falls back to both fail,
// it tries again later, waiting longer each time: meanwhile a request the
// server refuses logs in again by itself (withSession).
func (p *provider) keepAlive(s *session) {
	defer close(s.done)
	failures := 0
	for {
		at, relogin, ok := s.renewal()
		// A token not known to expire needs nothing; a login may still
		// replace it with one that does.
		wait := time.Minute
		if ok {
			wait = time.Until(at)
		}
		if failures > 0 {
			wait = max(wait, min(time.Second<<failures, time.Minute))
		}
		if providers.Sleep(s.ctx, wait) != nil {
			return
		}
		if !ok {
			continue
		}
		if err := p.renew(s, relogin); err != nil {
			failures = min(failures+1, 6)
		} else {
			failures = 0
		}
	}
}

// renew extends the session's token, or replaces it with a new login when
// relogin is set or the server refuses to renew it. Each is one attempt: the
// caller tries again later.
func (p *provider) renew(s *session, relogin bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, _, ok := s.renewal(); !ok || time.Until(at) > time.Second {
		return nil // a login since the caller looked
	}
	ctx, cancel := context.WithTimeout(s.ctx, p.callTimeout)
	defer cancel()
	if !relogin {
		token, _ := s.current()
		res, err := s.api.renewToken(ctx, token)
		if err == nil {
			s.setToken(res, false)
			p.recache(s)
			return nil
		}
		if s.ctx.Err() != nil {
			return err
		}
	}
	p.refreshCredentials(s)
	return p.loginOnce(ctx, s)
}

// login authenticates the session, retrying what is worth retrying. Callers
// hold s.mu or own s.
func (p *provider) login(ctx context.Context, s *session) error {
	if s.creds.method == authToken {
		s.setToken(loginResult{AccessToken: s.creds.token.Reveal()}, true)
		return nil
	}
	res, err := call(ctx, p, func(ctx context.Context) (loginResult, error) {
		return p.machineLogin(ctx, s)
	})
	return p.loggedIn(s, res, err)
}

// loginOnce is login with a single attempt.
func (p *provider) loginOnce(ctx context.Context, s *session) error {
	res, err := p.machineLogin(ctx, s)
	return p.loggedIn(s, res, err)
}

func (p *provider) machineLogin(ctx context.Context, s *session) (loginResult, error) {
	c := s.creds
	org := p.auth.OrganizationSlug
	if org == "" {
		org = p.env.Getenv("INFISICAL_AUTH_ORGANIZATION_SLUG")
	}
	if c.method == authKubernetes {
		return s.api.kubernetesAuthLogin(ctx, c.identityID, c.jwt.Reveal(), org)
	}
	return s.api.universalAuthLogin(ctx, c.clientID, c.clientSecret.Reveal(), org)
}

// loggedIn keeps the token of a successful login, or describes the failure
// with the identity and where its credentials came from.
func (p *provider) loggedIn(s *session, res loginResult, err error) error {
	c := s.creds
	if err == nil && res.AccessToken == "" {
		err = &requestError{err: errEmptyToken, cause: errEmptyToken.Error()}
	}
	if err != nil {
		what := "machine identity " + c.clientID
		if c.method == authKubernetes {
			what = "kubernetes identity " + c.identityID
		}
		return fmt.Errorf("infisical %q: log in to %s as %s (credentials from %s): %w", p.name, p.siteURL, what, c.origin, describe(err))
	}
	if res.ExpiresIn > 0 && res.ExpiresIn < 60 {
		p.warnShortTTL.Do(func() {
			p.env.Warn("infisical %q: access tokens from %s live only %ds; renewing them that often may hit rate limits", p.name, p.siteURL, res.ExpiresIn)
		})
	}
	s.setToken(res, true)
	p.recache(s)
	return nil
}

// refreshCredentials rereads Kubernetes credentials before a new login: the
// kubelet rotates projected service account tokens, so the one on disk now
// is the one to present, not the one read at start. Callers hold s.mu.
func (p *provider) refreshCredentials(s *session) {
	if s.creds.method == authKubernetes {
		if c, err := p.credentials(); err == nil {
			s.creds = c
		}
	}
}

// relogin logs in again after the server refused the session's token,
// unless another request already did since generation was read. A static
// access token cannot be renewed: its refusal is final.
func (p *provider) relogin(ctx context.Context, s *session, generation int) error {
	if s.creds.method == authToken {
		return errNoRelogin
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, g := s.current(); g != generation {
		return nil
	}
	p.refreshCredentials(s)
	return p.login(ctx, s)
}

var (
	errNoRelogin  = errors.New("a static access token cannot be renewed")
	errEmptyToken = errors.New("the login answer holds no access token")
)

// withSession runs f with the session's token, logging in once more if the
// server refuses it: it may have expired or been revoked ahead of its TTL.
func withSession[T any](ctx context.Context, p *provider, s *session, f func(token string) (T, error)) (T, error) {
	token, generation := s.current()
	v, err := f(token)
	if err == nil || !errors.Is(describe(err), providers.ErrAuth) {
		return v, err
	}
	if rerr := p.relogin(ctx, s, generation); rerr != nil {
		if errors.Is(rerr, errNoRelogin) {
			return v, err
		}
		var zero T
		return zero, &reloginError{err: rerr}
	}
	token, _ = s.current()
	return f(token)
}

// reloginError is a failed login after a refused token; it is already
// described and names the provider.
type reloginError struct{ err error }

func (e *reloginError) Error() string { return e.err.Error() }
func (e *reloginError) Unwrap() error { return e.err }
