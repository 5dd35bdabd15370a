package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/logincache"
)

// defaultK8sTokenFile is where Kubernetes mounts a pod's service-account
// token.
const defaultK8sTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// authSettings is the `auth:` block. Which keys apply depends on the method;
// validate rejects the others, so a key meant for another method is not
// silently ignored.
type authSettings struct {
	Method       string `yaml:"method"`
	Mount        string `yaml:"mount"`
	RoleID       string `yaml:"role_id"`
	SecretID     string `yaml:"secret_id"`
	SecretIDFile string `yaml:"secret_id_file"`
	Role         string `yaml:"role"`
	JWT          string `yaml:"jwt"`
	JWTFile      string `yaml:"jwt_file"`
	Audience     string `yaml:"audience"`
	TokenFile    string `yaml:"token_file"`
	Username     string `yaml:"username"`
	// Cache is `keyring` to keep the login's token for later runs; see
	// cachedLogin.
	Cache string `yaml:"cache"`
}

// methodKeys lists, per method, the keys it understands besides method and
// mount. userpass and ldap are for `secretrun login`; a run then uses the
// token that login stored.
var methodKeys = map[string][]string{
	"token":      {},
	"approle":    {"role_id", "secret_id", "secret_id_file"},
	"jwt":        {"role", "jwt", "jwt_file", "audience"},
	"kubernetes": {"role", "token_file"},
	"userpass":   {"username"},
	"ldap":       {"username"},
}

func (a *authSettings) method() string {
	if a.Method == "" {
		return "token"
	}
	return a.Method
}

// mount is the path the method is enabled at: its name unless overridden.
func (a *authSettings) mount() string {
	if m := strings.Trim(a.Mount, "/"); m != "" {
		return m
	}
	return a.method()
}

func (a *authSettings) validate() error {
	m := a.method()
	allowed, ok := methodKeys[m]
	if !ok {
		return fmt.Errorf("method %q is not one of token, approle, jwt, kubernetes, userpass, ldap", a.Method)
	}
	set := map[string]bool{
		"role_id": a.RoleID != "", "secret_id": a.SecretID != "", "secret_id_file": a.SecretIDFile != "",
		"role": a.Role != "", "jwt": a.JWT != "", "jwt_file": a.JWTFile != "", "audience": a.Audience != "",
		"token_file": a.TokenFile != "", "username": a.Username != "",
	}
	for key, isSet := range set {
		if isSet && !slices.Contains(allowed, key) {
			return fmt.Errorf("%s does not apply to method %s", key, m)
		}
	}
	cache, err := logincache.Enabled(a.Cache)
	if err != nil {
		return fmt.Errorf("%w (keyring keeps the login's token in the OS keyring between runs)", err)
	}
	switch {
	case cache && !a.selfLogin():
		return fmt.Errorf("cache applies to methods approle, jwt and kubernetes, which log in on every run; method %s does not", m)
	case m == "token" && a.Mount != "":
		return errors.New("mount does not apply to method token")
	case m == "approle" && a.SecretID != "" && a.SecretIDFile != "":
		return errors.New("give secret_id or secret_id_file, not both")
	case m == "jwt" && a.JWT != "" && a.JWTFile != "":
		return errors.New("give jwt or jwt_file, not both")
	}
	return nil
}

// required checks the values a login needs. It runs at login, not in New:
// they are usually ${VAR}s, which are empty when the config is checked for
// an environment that does not use this provider.
func (a *authSettings) required() error {
	switch m := a.method(); {
	case m == "approle" && a.RoleID == "":
		return errors.New("method approle needs role_id")
	case m == "kubernetes" && a.Role == "":
		return errors.New("method kubernetes needs role")
	}
	return nil
}

// cached reports whether the login's token is kept in the keyring.
func (a *authSettings) cached() bool {
	on, _ := logincache.Enabled(a.Cache)
	return on
}

// selfLogin reports whether the method logs in by itself on every run
// (machine identities) rather than using a stored token.
func (a *authSettings) selfLogin() bool {
	switch a.method() {
	case "approle", "jwt", "kubernetes":
		return true
	}
	return false
}

// tokenState is the token in use and what is known about it.
type tokenState struct {
	token string
	// origin says where the token came from, for messages.
	origin string
	// ours marks a token this provider obtained by logging in: it can log in
	// again when the token runs out, and it revokes the token on Close.
	ours bool
	// gen counts tokens over the run; leases remember the one they were
	// read with.
	gen int
	// known is set once the TTL and policies below have been learnt.
	known bool
	// noLookup marks a token that may not look itself up: its TTL cannot
	// be learnt, so it is not renewed.
	noLookup  bool
	renewable bool
	// increment is the TTL the token was issued with, asked for on renewal.
	increment time.Duration
	renewAt   time.Time
	// expires is when the token ends, if known; zero if never or unknown.
	expires  time.Time
	policies []string
	// warned stops a warning about an unrenewable token from repeating.
	warned bool
	// cache is set when the token is kept in the keyring for later runs
	// (`cache: keyring`). Such a token is never revoked: other runs may
	// be using it, and it is there to outlive this one.
	cache *logincache.Cache
	// fromCache marks a token an earlier run logged in for. Whether Vault
	// still accepts it is learnt from the first request; see Fetch.
	fromCache bool
	// rejected is set once Vault has said that the token is not valid.
	rejected bool
}

// loginFlight is one login under way. Whoever needs its token waits for it
// rather than logging in too, each for no longer than its own context
// allows.
type loginFlight struct {
	done chan struct{}
	// err is the outcome, set before done is closed.
	err error
	// abandoned marks a login that failed because the context of the
	// caller running it ended: that says nothing about whether a login
	// would succeed now, so a waiter with time left tries again.
	abandoned bool
}

// Token locking
//
// authMu guards the token state and is never held while a request is in
// flight: against a black-holed Vault a request can take a renewal's whole
// timeout, and every Fetch and Versions needs the lock to find its token.
// Renewal and lookup copy what they need under the lock, ask Vault without
// it, and apply the answer only if the token is still of the generation
// they asked about. A login runs as a loginFlight, one at a time; readers
// wait for it only when they have no usable token at all.

// ready returns the client with a usable token. It renews nothing, which
// is Renew's job, but it obtains the first token, and replaces a token of
// ours that has run out (Renew was not called in time, or Vault rejected
// it): without one no request can succeed. A token that is still good is
// used as it is, even while a renewal or a new login is under way.
func (p *provider) ready(ctx context.Context) (*client, error) {
	c, err := p.sharedClient()
	if err != nil {
		return nil, err
	}
	p.authMu.Lock()
	t := p.tok
	usable := t != nil && !(t.ours && !t.expires.IsZero() && !p.now().Before(t.expires))
	p.authMu.Unlock()
	if usable {
		return c, nil
	}
	if err := p.replaceToken(ctx, genOf(t)); err != nil {
		return nil, err
	}
	return c, nil
}

// genOf is the generation of t; 0 for no token.
func genOf(t *tokenState) int {
	if t == nil {
		return 0
	}
	return t.gen
}

// replaceToken obtains a token in place of the one of generation gen (0:
// there is none), or waits for the login already under way. It returns at
// once when that token has been replaced meanwhile.
func (p *provider) replaceToken(ctx context.Context, gen int) error {
	for {
		p.authMu.Lock()
		if t := p.tok; t != nil && t.gen != gen {
			p.authMu.Unlock()
			return nil
		}
		f := p.login
		if f == nil {
			f = &loginFlight{done: make(chan struct{})}
			p.login = f
			p.authMu.Unlock()
			p.runLogin(ctx, f)
		} else {
			p.authMu.Unlock()
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return p.describe(ctx, p.loginOp(), ctx.Err())
		}
		if f.abandoned && ctx.Err() == nil {
			continue
		}
		return f.err
	}
}

// runLogin obtains a token without holding authMu and puts it in place.
func (p *provider) runLogin(ctx context.Context, f *loginFlight) {
	tok, err := p.obtainToken(ctx)
	p.authMu.Lock()
	defer p.authMu.Unlock()
	p.login = nil
	f.err = err
	f.abandoned = err != nil && ctx.Err() != nil
	if err == nil {
		p.installTokenLocked(tok)
	}
	// Only now: a waiter goes on to use the client's token.
	close(f.done)
}

// installTokenLocked makes tok the token in use. A replaced token of ours
// is not revoked now: the leases read with it, which a running child may be
// using, die with it. They are marked stale instead, so Renew reports them
// as expiring and the next Fetch reads fresh ones, and the old token is
// revoked on Close. Called with authMu held.
func (p *provider) installTokenLocked(tok *tokenState) {
	p.lastGen++
	tok.gen = p.lastGen
	if old := p.tok; old != nil && old.ours && old.cache == nil {
		p.oldTokens = append(p.oldTokens, old.token)
	}
	p.tok = tok
	// ready built the client before any token was wanted.
	c, _ := p.sharedClient()
	c.setToken(tok.token)
	p.leaseMu.Lock()
	for _, l := range p.leases {
		if l.tokenGen < tok.gen {
			l.stale = true
		}
	}
	p.leaseMu.Unlock()
}

// loginOp names what obtaining a token does, for messages.
func (p *provider) loginOp() string {
	if p.auth.selfLogin() {
		return "login with " + p.auth.method() + " at auth/" + p.auth.mount()
	}
	return "find a token"
}

// obtainToken finds or obtains a token according to the auth method.
func (p *provider) obtainToken(ctx context.Context) (*tokenState, error) {
	if p.auth.selfLogin() {
		return p.machineLogin(ctx)
	}
	type candidate struct {
		origin string
		get    func() string
	}
	fromEnv := candidate{"VAULT_TOKEN", func() string { return strings.TrimSpace(p.env.Getenv("VAULT_TOKEN")) }}
	fromFile := candidate{"~/.vault-token", func() string {
		if p.env.HomeDir == "" {
			return ""
		}
		b, err := os.ReadFile(filepath.Join(p.env.HomeDir, ".vault-token"))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}}
	fromKeyring := candidate{"the keyring (secretrun login " + p.name + ")", func() string {
		if p.env.Keyring == nil {
			return ""
		}
		s, err := p.env.Keyring.Get(KeyringService, p.conn.address)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(s.Reveal())
	}}
	order := []candidate{fromEnv, fromFile, fromKeyring}
	if m := p.auth.method(); m == "userpass" || m == "ldap" {
		// The token `secretrun login` obtained with this method comes first.
		order = []candidate{fromKeyring, fromEnv, fromFile}
	}
	for _, c := range order {
		if t := c.get(); t != "" {
			return &tokenState{token: t, origin: c.origin}, nil
		}
	}
	return nil, fmt.Errorf("vault %q: %w: no token: set VAULT_TOKEN, run `vault login`, run `secretrun login %s`, or configure auth: (approle, jwt, kubernetes)", p.name, providers.ErrAuth, p.name)
}

// machineLogin logs in with approle, jwt or kubernetes, or takes the token
// an earlier run kept in the keyring for the same credential.
func (p *provider) machineLogin(ctx context.Context) (*tokenState, error) {
	op := "login with " + p.auth.method() + " at auth/" + p.auth.mount()
	if err := p.auth.required(); err != nil {
		return nil, fmt.Errorf("vault %q: %s: %w: %w", p.name, op, providers.ErrAuth, err)
	}
	cred, err := p.loginCredential()
	if err != nil {
		return nil, fmt.Errorf("vault %q: %s: %w", p.name, op, err)
	}
	var cache *logincache.Cache
	if p.auth.cached() {
		cache = logincache.New(p.env.Keyring, p.cacheIdentity(), cred.digest)
		if t, ok := cache.Load(p.now()); ok && !t.Value.Equal(p.distrusted()) {
			return p.tokenFromCache(op, t, cache), nil
		}
	}
	if cred.fetch != nil {
		jwt, err := cred.fetch(ctx)
		if err != nil {
			return nil, fmt.Errorf("vault %q: %s: %w", p.name, op, err)
		}
		cred.body["jwt"] = jwt
	}
	s, err := p.loginRequest(ctx, "auth/"+p.auth.mount()+"/login", cred.body)
	if err != nil {
		return nil, p.loginError(ctx, op, err)
	}
	tok, err := p.tokenFromLogin(op, s)
	if err != nil {
		return nil, err
	}
	if cache != nil {
		p.keep(cache, tok)
	}
	return tok, nil
}

// credential is what a machine login sends, read before any request.
type credential struct {
	body map[string]any
	// digest stands for the credential in the login cache.
	digest string
	// fetch, when set, obtains the JWT over the network; it runs only when
	// no cached token will do.
	fetch func(context.Context) (string, error)
}

// loginCredential reads the secret id, JWT or service-account token from
// the config, files or the environment. It sends nothing.
func (p *provider) loginCredential() (credential, error) {
	switch p.auth.method() {
	case "approle":
		body := map[string]any{"role_id": p.auth.RoleID}
		secretID := p.auth.SecretID
		if p.auth.SecretIDFile != "" {
			b, err := os.ReadFile(p.auth.SecretIDFile)
			if err != nil {
				return credential{}, fmt.Errorf("%w: secret_id_file: %w", providers.ErrAuth, err)
			}
			secretID = strings.TrimSpace(string(b))
		}
		if secretID != "" {
			body["secret_id"] = secretID
		}
		return credential{body: body, digest: logincache.Digest("secret_id", secretID)}, nil
	case "jwt":
		body := map[string]any{}
		if p.auth.Role != "" {
			body["role"] = p.auth.Role
		}
		jwt, given, err := p.configuredJWT()
		if err != nil {
			return credential{}, err
		}
		if given {
			body["jwt"] = jwt
			return credential{body: body, digest: logincache.Digest("jwt", jwt)}, nil
		}
		reqURL := p.env.Getenv("ACTIONS_ID_TOKEN_REQUEST_URL")
		reqToken := p.env.Getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
		if reqURL == "" || reqToken == "" {
			return credential{}, fmt.Errorf("%w: no JWT: set jwt or jwt_file, or run in GitHub Actions with `permissions: id-token: write`", providers.ErrAuth)
		}
		// The request token stands for the JWTs GitHub would give for it:
		// one job's.
		return credential{body: body, digest: logincache.Digest("github-oidc", reqURL, reqToken), fetch: func(ctx context.Context) (string, error) {
			return p.githubOIDCToken(ctx, reqURL, reqToken)
		}}, nil
	default: // kubernetes
		file := p.auth.TokenFile
		if file == "" {
			file = defaultK8sTokenFile
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return credential{}, fmt.Errorf("%w: service-account token: %w", providers.ErrAuth, err)
		}
		jwt := strings.TrimSpace(string(b))
		return credential{body: map[string]any{"role": p.auth.Role, "jwt": jwt}, digest: logincache.Digest("jwt", jwt)}, nil
	}
}

// loginRequest sends a login without any token: a stale token must not
// interfere with obtaining a new one.
func (p *provider) loginRequest(ctx context.Context, path string, body map[string]any) (*secret, error) {
	c, err := p.newClient("")
	if err != nil {
		return nil, err
	}
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer p.release()
	return c.write(ctx, path, body)
}

func (p *provider) loginError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil || isUnavailable(err) {
		return p.describe(ctx, op, err)
	}
	if statusOf(err) == 0 {
		return fmt.Errorf("vault %q: %s: %w", p.name, op, err)
	}
	return fmt.Errorf("vault %q: %s: %w: %s", p.name, op, providers.ErrAuth, vaultSays(err))
}

func (p *provider) tokenFromLogin(op string, s *secret) (*tokenState, error) {
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("vault %q: %s: %w: no token in the response", p.name, op, providers.ErrAuth)
	}
	a := s.Auth
	t := &tokenState{
		token:     a.ClientToken,
		origin:    op,
		ours:      true,
		known:     true,
		renewable: a.Renewable,
		increment: time.Duration(a.LeaseDuration) * time.Second,
		policies:  a.Policies,
	}
	if t.increment > 0 {
		now := p.now()
		t.renewAt = now.Add(renewPoint(t.increment))
		t.expires = now.Add(t.increment)
	}
	return t, nil
}

// configuredJWT returns the JWT given in the config or in jwt_file; given
// is false when neither is set and GitHub Actions is to be asked.
func (p *provider) configuredJWT() (jwt string, given bool, err error) {
	switch {
	case p.auth.JWT != "":
		return p.auth.JWT, true, nil
	case p.auth.JWTFile != "":
		b, err := os.ReadFile(p.auth.JWTFile)
		if err != nil {
			return "", true, fmt.Errorf("%w: jwt_file: %w", providers.ErrAuth, err)
		}
		return strings.TrimSpace(string(b)), true, nil
	}
	return "", false, nil
}

// githubOIDCToken asks GitHub Actions for an OIDC token, as
// actions/toolkit's core.getIDToken does: GET the request URL with an
// `audience` parameter and the request token as a bearer token; the JWT is
// in the `value` field of the JSON answer.
func (p *provider) githubOIDCToken(ctx context.Context, reqURL, reqToken string) (string, error) {
	u, err := url.Parse(reqURL)
	if err != nil {
		return "", fmt.Errorf("%w: ACTIONS_ID_TOKEN_REQUEST_URL is not a URL", providers.ErrAuth)
	}
	if p.auth.Audience != "" {
		q := u.Query()
		q.Set("audience", p.auth.Audience)
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+reqToken)
	req.Header.Set("Accept", "application/json")
	// Not the Vault client: a ca_cert for Vault must not replace the roots
	// that verify GitHub.
	t := newTransport(p.conn.proxy)
	// One request to another host: no connection to keep.
	t.DisableKeepAlives = true
	t.MaxIdleConnsPerHost = -1
	hc := &http.Client{Transport: t}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: GitHub Actions OIDC token: %w", providers.ErrUnavailable, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: GitHub Actions OIDC token: HTTP %d (does the job have `permissions: id-token: write`?)", providers.ErrAuth, resp.StatusCode)
	}
	var body struct {
		Value string `json:"value"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil || body.Value == "" {
		return "", fmt.Errorf("%w: GitHub Actions OIDC token: no token in the answer", providers.ErrAuth)
	}
	return body.Value, nil
}

// renewPoint is when to renew something that lasts ttl: at about two
// thirds, with jitter so that many secretrun processes started together do
// not renew together.
func renewPoint(ttl time.Duration) time.Duration {
	return time.Duration(float64(ttl) * (0.6 + 0.13*rand.Float64()))
}

// learnToken looks the token up once, for its TTL (to renew it in long
// runs) and its policies (for messages), and returns the generation it
// asked about. What it learns is dropped if the token was replaced while
// Vault answered.
func (p *provider) learnToken(ctx context.Context) (int, error) {
	p.authMu.Lock()
	t := p.tok
	if t == nil || t.known {
		p.authMu.Unlock()
		return genOf(t), nil
	}
	token, gen := t.token, t.gen
	p.authMu.Unlock()

	c, err := p.newClient(token)
	if err != nil {
		return gen, err
	}
	if err := p.acquire(ctx); err != nil {
		return gen, err
	}
	s, err := c.lookupSelf(ctx)
	p.release()
	if err != nil {
		return gen, err
	}
	if s == nil {
		return gen, errors.New("empty answer to token lookup")
	}
	policies := s.tokenPolicies()
	renewable := s.tokenRenewable()
	ttl := s.tokenTTL()
	inc := ttl
	if n, ok := s.Data["creation_ttl"].(json.Number); ok {
		if v, err := n.Int64(); err == nil && v > 0 {
			inc = time.Duration(v) * time.Second
		}
	}

	p.authMu.Lock()
	defer p.authMu.Unlock()
	t = p.tok
	if t == nil || t.gen != gen || t.known {
		return gen, nil
	}
	now := p.now()
	t.known = true
	t.policies = policies
	t.renewable = renewable
	t.increment = inc
	if ttl > 0 {
		t.expires = now.Add(ttl)
	}
	if ttl > 0 && inc > 0 {
		// Renew when about two thirds of the token's life has gone; for
		// a token that is already old, that may be right away.
		elapsed := inc - ttl
		t.renewAt = now.Add(renewPoint(inc) - elapsed)
	}
	return gen, nil
}

// tokenPolicies returns the token's policies, for a permission-denied
// message.
func (p *provider) tokenPolicies(ctx context.Context) ([]string, error) {
	if _, err := p.learnToken(ctx); err != nil {
		return nil, err
	}
	p.authMu.Lock()
	defer p.authMu.Unlock()
	if p.tok == nil {
		return nil, errors.New("no token")
	}
	return slices.Clone(p.tok.policies), nil
}

func (p *provider) tokenOrigin() string {
	p.authMu.Lock()
	defer p.authMu.Unlock()
	if p.tok == nil {
		return "no token"
	}
	return "token from " + p.tok.origin
}

// refreshToken renews the token once it is past its renewal point. A token
// this provider logged in for is replaced by a new login when it cannot be
// renewed far enough; a token the user gave is renewed while it can be,
// with one warning when it cannot.
func (p *provider) refreshToken(ctx context.Context) error {
	p.authMu.Lock()
	t := p.tok
	if t == nil || t.renewAt.IsZero() || p.now().Before(t.renewAt) {
		p.authMu.Unlock()
		return nil
	}
	token, gen, renewable, increment := t.token, t.gen, t.renewable, t.increment
	p.authMu.Unlock()

	granted := time.Duration(0)
	var renewErr error
	if renewable {
		c, err := p.newClient(token)
		if err != nil {
			return err
		}
		if err := p.acquire(ctx); err != nil {
			return err
		}
		s, err := c.renewSelf(ctx, int(increment/time.Second))
		p.release()
		switch {
		case err != nil && (isUnavailable(err) || ctx.Err() != nil):
			return p.describe(ctx, "renew token", err)
		case err != nil:
			renewErr = errors.New(vaultSays(err))
		case s != nil && s.Auth != nil:
			granted = time.Duration(s.Auth.LeaseDuration) * time.Second
		}
	}

	p.authMu.Lock()
	t = p.tok
	if t == nil || t.gen != gen {
		// Replaced while Vault answered: the new token keeps its own
		// schedule.
		p.authMu.Unlock()
		return nil
	}
	now := p.now()
	if granted > 0 {
		t.expires = now.Add(granted)
	}
	if renewErr == nil && granted > 0 && granted*3 >= t.increment*2 {
		t.renewAt = now.Add(renewPoint(granted))
		cache, kept := t.cache, cachedForm(t)
		p.authMu.Unlock()
		p.recache(cache, kept)
		return nil
	}
	if t.ours {
		drop := p.spentLocked(t)
		p.authMu.Unlock()
		if drop != nil {
			drop.Drop(providers.NewSecret(token))
		}
		return p.replaceToken(ctx, gen)
	}
	t.renewAt = time.Time{}
	warn := !t.warned
	t.warned = true
	origin := t.origin
	p.authMu.Unlock()
	if warn {
		why := "it is not renewable"
		if renewErr != nil {
			why = "renewal failed: " + renewErr.Error()
		} else if granted > 0 {
			why = "it reached its maximum TTL"
		}
		p.env.Warn("vault %q: the %s cannot be renewed (%s); it will expire and reads will then fail", p.name, "token from "+origin, why)
	}
	return nil
}

// currentTokenGen is the generation of the token in use.
func (p *provider) currentTokenGen() int {
	p.authMu.Lock()
	defer p.authMu.Unlock()
	return genOf(p.tok)
}
