// Package vault is secretrun's provider for HashiCorp Vault and OpenBao: KV
// v1 and v2 secrets read by the paths users give `vault kv get`, and leased
// (dynamic) secrets such as database/creds/<role>, renewed (Renew) while
// secretrun runs and revoked (Close) when it exits.
//
// The provider talks to Vault through a client of its own (client.go), built
// from settings and the standard VAULT_* variables read through
// providers.Env, never from the process environment directly. Nothing
// touches the network before the first Fetch, Versions or Login; Renew and
// Close before a Fetch do nothing.
package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/secretrun/secretrun/providers"
)

// TypeName is the value of `type:` that selects this provider.
const TypeName = "vault"

// KeyringService is the keyring service under which `secretrun login`
// stores Vault tokens, keyed by the Vault address.
const KeyringService = "secretrun-vault"

// defaultAddress is the vault CLI's own default.
const defaultAddress = "https://127.0.0.1:8200"

const defaultConcurrency = 8

// Type returns the `vault` provider type, for providers/all.
func Type() providers.Type { return providers.Type{Name: TypeName, New: New} }

// settings is the provider block in secretrun.yaml.
type settings struct {
	Address        string        `yaml:"address"`
	Namespace      string        `yaml:"namespace"`
	CACert         string        `yaml:"ca_cert"`
	ClientCert     string        `yaml:"client_cert"`
	ClientKey      string        `yaml:"client_key"`
	TLSSkipVerify  bool          `yaml:"tls_skip_verify"`
	RevokeOnExit   *bool         `yaml:"revoke_on_exit"`
	MaxConcurrency int           `yaml:"max_concurrency"`
	Auth           *authSettings `yaml:"auth"`
}

// sourceSettings is what a source of this provider says beside the common
// keys.
type sourceSettings struct {
	Path string `yaml:"path"`
}

// ref is a parsed source: the path as the user wrote it for `vault kv get`
// or `vault read`, without a leading slash.
type ref struct {
	path string
}

func (r ref) String() string { return r.path }

// connection is everything needed to build the client, resolved from
// settings and VAULT_* variables at construction so that mistakes show up
// before the network is touched.
type connection struct {
	address       string
	namespace     string
	caCert        string
	caCertBytes   string
	caPath        string
	clientCert    string
	clientKey     string
	serverName    string
	skipVerify    bool
	timeout       time.Duration
	maxRetries    int
	proxy         func(*http.Request) (*url.URL, error)
	maxConcurrent int
}

// provider is one configured Vault instance.
type provider struct {
	name   string
	env    providers.Env
	conn   connection
	auth   authSettings
	revoke bool
	now    func() time.Time

	// sem bounds the requests in flight, across concurrent Fetch, Versions,
	// Renew and Close calls alike.
	sem chan struct{}

	httpOnce sync.Once
	httpc    *http.Client
	httpErr  error

	clientOnce sync.Once
	client     *client
	clientErr  error

	mounts mountCache

	// authMu guards the token fields below; see "Token locking" in
	// auth.go.
	authMu sync.Mutex
	tok    *tokenState
	// login is the login under way, if any.
	login *loginFlight
	// lastGen is the generation of the latest token; a token obtained
	// after Close still gets a new one, so leases never confuse two.
	lastGen int
	// oldTokens are tokens this provider obtained by logging in and then
	// replaced; they are revoked on Close with everything they created.
	oldTokens []string
	// distrust is a cached token the run gave up on (Vault rejected it,
	// or it could not be renewed far enough): should it still be in the
	// keyring, it is not taken again.
	distrust providers.Secret

	leaseMu sync.Mutex
	leases  map[string]*leaseState
	// held lists every lease read during the run, superseded ones included,
	// for Close.
	held []*leaseState

	// noMetadata records KV v2 paths whose metadata the token may not read,
	// so Versions stops asking.
	noMetadata sync.Map
}

var (
	_ providers.Provider  = (*provider)(nil)
	_ providers.Versioner = (*provider)(nil)
	_ providers.Holder    = (*provider)(nil)
	_ providers.Loginer   = (*provider)(nil)
)

// New builds a Vault provider from its config block. It validates settings
// and reads VAULT_* variables through env, and does not contact Vault.
func New(name string, opts providers.Options, env providers.Env) (providers.Provider, error) {
	var s settings
	if err := opts.Decode(&s); err != nil {
		return nil, err
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	p := &provider{name: name, env: env, revoke: true, now: time.Now, leases: map[string]*leaseState{}}
	if s.RevokeOnExit != nil {
		p.revoke = *s.RevokeOnExit
	}
	conn, err := resolveConnection(s, env)
	if err != nil {
		return nil, fmt.Errorf("%s: vault %q: %w", opts.Pos(), name, err)
	}
	p.conn = conn
	if s.Auth != nil {
		p.auth = *s.Auth
	}
	if err := p.auth.validate(); err != nil {
		return nil, fmt.Errorf("%s: vault %q: auth: %w", opts.Pos(), name, err)
	}
	p.sem = make(chan struct{}, conn.maxConcurrent)
	if conn.skipVerify {
		env.Warn("vault %q: TLS certificate verification is OFF (tls_skip_verify / VAULT_SKIP_VERIFY): anyone on the network path can read every secret and token; use ca_cert instead", name)
	}
	return p, nil
}

// resolveConnection applies the vault CLI's precedence: a setting in the
// config, then the VAULT_* variable, then the CLI's default.
func resolveConnection(s settings, env providers.Env) (connection, error) {
	get := env.Getenv
	first := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	c := connection{
		address:     first(s.Address, get("VAULT_AGENT_ADDR"), get("VAULT_ADDR"), defaultAddress),
		namespace:   first(s.Namespace, get("VAULT_NAMESPACE")),
		caCert:      first(s.CACert, get("VAULT_CACERT")),
		caCertBytes: get("VAULT_CACERT_BYTES"),
		caPath:      get("VAULT_CAPATH"),
		clientCert:  first(s.ClientCert, get("VAULT_CLIENT_CERT")),
		clientKey:   first(s.ClientKey, get("VAULT_CLIENT_KEY")),
		serverName:  get("VAULT_TLS_SERVER_NAME"),
		skipVerify:  s.TLSSkipVerify,
		timeout:     60 * time.Second,
		maxRetries:  2,
	}
	u, err := url.Parse(c.address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix") || (u.Host == "" && u.Scheme != "unix") {
		return c, fmt.Errorf("address %q is not a URL such as https://vault.example.com:8200", c.address)
	}
	if (c.clientCert == "") != (c.clientKey == "") {
		return c, errors.New("client_cert and client_key go together: give both or neither")
	}
	if v := get("VAULT_SKIP_VERIFY"); v != "" && !c.skipVerify {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("VAULT_SKIP_VERIFY=%q is not a boolean", v)
		}
		c.skipVerify = b
	}
	if v := get("VAULT_CLIENT_TIMEOUT"); v != "" {
		d, err := parseSeconds(v)
		if err != nil {
			return c, fmt.Errorf("VAULT_CLIENT_TIMEOUT=%q is not a duration", v)
		}
		c.timeout = d
	}
	if v := get("VAULT_MAX_RETRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, fmt.Errorf("VAULT_MAX_RETRIES=%q is not a count", v)
		}
		c.maxRetries = n
	}
	c.maxConcurrent = defaultConcurrency
	if s.MaxConcurrency < 0 {
		return c, errors.New("max_concurrency must be at least 1")
	}
	if s.MaxConcurrency > 0 {
		c.maxConcurrent = s.MaxConcurrency
	}
	// The proxy variables are read through env too, so that tests and
	// embedders see exactly what the provider sees.
	vaultProxy := first(get("VAULT_PROXY_ADDR"), get("VAULT_HTTP_PROXY"))
	if vaultProxy != "" {
		pu, err := url.Parse(vaultProxy)
		if err != nil {
			return c, fmt.Errorf("VAULT_PROXY_ADDR is not a URL: %w", err)
		}
		c.proxy = http.ProxyURL(pu)
	} else {
		pc := httpproxy.Config{
			HTTPProxy:  first(get("HTTP_PROXY"), get("http_proxy")),
			HTTPSProxy: first(get("HTTPS_PROXY"), get("https_proxy")),
			NoProxy:    first(get("NO_PROXY"), get("no_proxy")),
		}
		f := pc.ProxyFunc()
		c.proxy = func(r *http.Request) (*url.URL, error) { return f(r.URL) }
	}
	return c, nil
}

// parseSeconds reads "30", "30s" or "1m", as the vault CLI does.
func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

// ParseSource decodes `path:` and checks `version:`.
func (p *provider) ParseSource(src *providers.Source, opts providers.Options) (providers.Ref, error) {
	var s sourceSettings
	if err := opts.Decode(&s); err != nil {
		return nil, err
	}
	path := strings.Trim(strings.TrimSpace(s.Path), "/")
	if path == "" {
		return nil, fmt.Errorf("%s: vault %q: missing `path:`, such as secret/myapp/prod or database/creds/myapp", opts.Pos(), p.name)
	}
	if strings.Contains(path, "//") || strings.Contains(path, "..") {
		return nil, fmt.Errorf("%s: vault %q: path %q has an empty or .. segment", opts.Pos(), p.name, path)
	}
	if src.Version != "" {
		if n, err := strconv.Atoi(src.Version); err != nil || n < 1 {
			return nil, fmt.Errorf("%s: vault %q: version %q: a KV v2 version is a number from 1", opts.Pos(), p.name, src.Version)
		}
	}
	return ref{path: path}, nil
}

// sharedClient returns the one client of the run, built on first use; it
// carries the token in use.
func (p *provider) sharedClient() (*client, error) {
	p.clientOnce.Do(func() {
		p.client, p.clientErr = p.newClient("")
		if p.clientErr != nil {
			p.clientErr = fmt.Errorf("vault %q: %w", p.name, p.clientErr)
		}
	})
	return p.client, p.clientErr
}

// httpClient returns the provider's one HTTP client: one transport, so one
// pool of keep-alive connections for the whole run, and TLS set up once.
func (p *provider) httpClient() (*http.Client, error) {
	p.httpOnce.Do(func() {
		t := newTransport(p.conn.proxy)
		t.MaxIdleConnsPerHost = p.conn.maxConcurrent + 2
		if socket, ok := strings.CutPrefix(p.conn.address, "unix://"); ok {
			t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			}
		}
		tc, err := tlsConfig(p.conn)
		if err != nil {
			p.httpErr = fmt.Errorf("tls: %w", err)
			return
		}
		t.TLSClientConfig = tc
		p.httpc = &http.Client{
			Transport: t,
			// The client follows Vault's redirects itself, keeping the
			// token.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	return p.httpc, p.httpErr
}

// newClient builds a client that shares the provider's HTTP client and
// carries token (none when empty).
func (p *provider) newClient(token string) (*client, error) {
	hc, err := p.httpClient()
	if err != nil {
		return nil, err
	}
	return &client{
		hc:         hc,
		base:       apiBase(p.conn.address),
		namespace:  p.conn.namespace,
		timeout:    p.conn.timeout,
		maxRetries: p.conn.maxRetries,
		backoff:    vaultBackoff,
		token:      token,
	}, nil
}

// acquire takes one of the max_concurrency request slots.
func (p *provider) acquire(ctx context.Context) error {
	select {
	case p.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *provider) release() { <-p.sem }
