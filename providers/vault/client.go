package vault

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/secretrun/secretrun/providers"
)

// The client
//
// The provider needs seven of Vault's HTTP API calls, so it makes them
// itself, the way the vault CLI's own api package makes them: the same
// headers, the same retries and waits, one redirect followed with the
// token, JSON numbers kept as written, and errors carrying Vault's status
// and messages. A library client would cost every start of secretrun its
// package init, whether or not the run talks to Vault.

// Retry waits: the nth retry waits n times a random duration between
// these, as the vault CLI waits.
const (
	minRetryWait = 1000 * time.Millisecond
	maxRetryWait = 1500 * time.Millisecond
)

const (
	tokenHeader     = "X-Vault-Token"
	namespaceHeader = "X-Vault-Namespace"
	// requestHeader marks a request as a deliberate API call; Vault Agent
	// and Vault Proxy can be set to refuse any without it, a defence
	// against server-side request forgery.
	requestHeader = "X-Vault-Request"
)

// client makes Vault API calls with one token. Every client of a provider
// shares the provider's http.Client, and so its pool of connections.
type client struct {
	hc *http.Client
	// base holds the address's scheme, user, host and path; a request's
	// path goes below its path, after /v1/.
	base       url.URL
	namespace  string
	timeout    time.Duration
	maxRetries int
	// backoff is the wait before retry number attempt (from 0), after
	// resp, or after no answer at all when resp is nil.
	backoff func(attempt int, resp *http.Response) time.Duration

	mu    sync.Mutex
	token string
}

func (c *client) setToken(token string) {
	c.mu.Lock()
	c.token = token
	c.mu.Unlock()
}

// secret is what Vault answers most calls with.
type secret struct {
	RequestID     string         `json:"request_id"`
	LeaseID       string         `json:"lease_id"`
	LeaseDuration int            `json:"lease_duration"`
	Renewable     bool           `json:"renewable"`
	Data          map[string]any `json:"data"`
	Warnings      []string       `json:"warnings"`
	Auth          *secretAuth    `json:"auth"`
	// WrapInfo and MountType are not used, but a body that has them is
	// an answer, not raw data; see parseSecret.
	WrapInfo  *json.RawMessage `json:"wrap_info"`
	MountType string           `json:"mount_type"`
}

// secretAuth is the token a login or a token renewal hands out.
type secretAuth struct {
	ClientToken   string   `json:"client_token"`
	Policies      []string `json:"policies"`
	LeaseDuration int      `json:"lease_duration"`
	Renewable     bool     `json:"renewable"`
}

// responseError is Vault's answer with a status outside 200-399.
type responseError struct {
	method string
	url    string
	status int
	// raw marks a body that was not Vault's {"errors": [...]}, such as a
	// proxy's error page; errors then holds the whole body.
	raw       bool
	errors    []string
	namespace string
}

// Error is the text the vault CLI prints for the same answer.
func (e *responseError) Error() string {
	var b strings.Builder
	b.WriteString("Error making API request.\n\n")
	if e.namespace != "" && e.namespace != "root/" {
		b.WriteString("Namespace: " + e.namespace + "\n")
	}
	kind := "Errors"
	if e.raw {
		kind = "Raw Message"
	}
	fmt.Fprintf(&b, "URL: %s %s\nCode: %d. %s:\n\n", e.method, e.url, e.status, kind)
	if e.raw && len(e.errors) == 1 {
		b.WriteString(e.errors[0])
		return b.String()
	}
	for _, msg := range e.errors {
		b.WriteString("* " + msg)
	}
	return b.String()
}

// answer is a response with its body read.
type answer struct {
	status int
	body   []byte
}

// read reads path (below /v1/). A 404 is no error: nothing there is
// (nil, nil), and a deleted or destroyed KV v2 version the secret Vault
// sends with it, which holds the version's metadata.
func (c *client) read(ctx context.Context, path string, query url.Values) (*secret, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	a, err := c.send(ctx, http.MethodGet, path, query, nil)
	if a != nil && a.status == http.StatusNotFound {
		return notFoundBody(a.body)
	}
	if err != nil {
		return nil, err
	}
	return parseSecret(a.body)
}

// write writes body as JSON to path (below /v1/). A 404 with data
// returns the data beside the error.
func (c *client) write(ctx context.Context, path string, body map[string]any) (*secret, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	a, err := c.send(ctx, http.MethodPut, path, nil, body)
	if a != nil && a.status == http.StatusNotFound {
		s, perr := notFoundBody(a.body)
		if perr != nil {
			return nil, perr
		}
		return s, err
	}
	if err != nil {
		return nil, err
	}
	return parseSecret(a.body)
}

// notFoundBody is the secret in the body of a 404 if it has data or
// warnings, else nil.
func notFoundBody(body []byte) (*secret, error) {
	s, err := parseSecret(body)
	switch {
	case errors.Is(err, io.EOF):
		// White space only.
		return nil, nil
	case err != nil:
		return nil, err
	case s != nil && (len(s.Warnings) > 0 || len(s.Data) > 0):
		return s, nil
	}
	return nil, nil
}

// call sends one request and parses the secret in the answer.
func (c *client) call(ctx context.Context, method, path string, body map[string]any) (*secret, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	a, err := c.send(ctx, method, path, nil, body)
	if err != nil {
		return nil, err
	}
	return parseSecret(a.body)
}

// do sends one request whose answer has nothing to read.
func (c *client) do(ctx context.Context, method, path string, body map[string]any) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	_, err := c.send(ctx, method, path, nil, body)
	return err
}

func (c *client) lookupSelf(ctx context.Context) (*secret, error) {
	return c.call(ctx, http.MethodGet, "auth/token/lookup-self", nil)
}

func (c *client) renewSelf(ctx context.Context, increment int) (*secret, error) {
	return c.call(ctx, http.MethodPut, "auth/token/renew-self", map[string]any{"increment": increment})
}

func (c *client) revokeSelf(ctx context.Context) error {
	return c.do(ctx, http.MethodPut, "auth/token/revoke-self", nil)
}

func (c *client) renewLease(ctx context.Context, id string, increment int) (*secret, error) {
	return c.call(ctx, http.MethodPut, "sys/leases/renew", map[string]any{"increment": increment, "lease_id": id})
}

func (c *client) revokeLease(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPut, "sys/leases/revoke", map[string]any{"lease_id": id})
}

// withTimeout bounds one call, its retries and the reading of its answer
// by VAULT_CLIENT_TIMEOUT; 0 is no bound.
func (c *client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return ctx, func() {}
}

// send makes the request, with retries, and follows one redirect, as a
// standby answers 307 with the active node's address. It returns the
// answer with its body read, and a *responseError beside it when the
// status is not 200-399.
func (c *client) send(ctx context.Context, method, apiPath string, query url.Values, body map[string]any) (*answer, error) {
	c.mu.Lock()
	token := c.token
	c.mu.Unlock()
	if strings.ContainsFunc(token, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return nil, errors.New("configured Vault token contains non-printable characters and cannot be used")
	}
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	u := c.base
	u.Path = path.Join(c.base.Path, "/v1/"+apiPath)
	u.RawQuery = query.Encode()
	for redirected := false; ; redirected = true {
		resp, err := c.retrying(ctx, method, &u, token, payload)
		if err != nil {
			return nil, err
		}
		s := resp.StatusCode
		redirect := s == http.StatusMovedPermanently || s == http.StatusFound || s == http.StatusTemporaryRedirect
		if !redirect || redirected {
			// A second redirect is the answer.
			return c.readAnswer(resp, method, &u)
		}
		loc, err := resp.Location()
		drain(resp.Body)
		if err != nil {
			return nil, err
		}
		if u.Scheme == "https" && loc.Scheme != "https" {
			return nil, errors.New("redirect would cause protocol downgrade")
		}
		loc.RawQuery = u.RawQuery
		u = *loc
	}
}

// readAnswer reads and closes the body of resp.
func (c *client) readAnswer(resp *http.Response, method string, u *url.URL) (*answer, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	a := &answer{status: resp.StatusCode, body: b}
	if a.status >= 200 && a.status < 400 {
		return a, nil
	}
	e := &responseError{method: method, url: u.Redacted(), status: a.status, namespace: resp.Header.Get(namespaceHeader)}
	var list struct{ Errors []string }
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&list); err != nil {
		e.raw, e.errors = true, []string{string(b)}
	} else {
		e.errors = list.Errors
	}
	return a, e
}

// retrying sends the request until it gets an answer not worth retrying
// or has retried maxRetries times, sending the payload anew each time. It
// retries when there is no answer (unless Vault's certificate cannot be
// verified or the request cannot be sent at all), on 5xx except 501, on
// 412 (a performance standby without the index asked for yet) and on 429.
func (c *client) retrying(ctx context.Context, method string, u *url.URL, token string, payload []byte) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		var body io.Reader
		if payload != nil {
			body = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
		if err != nil {
			return nil, err
		}
		req.Header.Set(requestHeader, "true")
		if c.namespace != "" {
			req.Header.Set(namespaceHeader, c.namespace)
		}
		if token != "" {
			req.Header.Set(tokenHeader, token)
		}
		resp, err := c.hc.Do(req)
		if ctx.Err() != nil {
			if resp != nil {
				drain(resp.Body)
			}
			c.hc.CloseIdleConnections()
			return nil, ctx.Err()
		}
		retry := worthRetrying(resp, err)
		if !retry || attempt >= c.maxRetries {
			if err != nil || retry {
				// Giving up: a connection left idle may be the one that
				// failed (a black hole, a balancer's dead backend); the
				// next call dials afresh.
				c.hc.CloseIdleConnections()
			}
			return resp, err
		}
		wait := c.backoff(attempt, resp)
		if resp != nil {
			drain(resp.Body)
		}
		if err := providers.Sleep(ctx, wait); err != nil {
			c.hc.CloseIdleConnections()
			return nil, err
		}
	}
}

// worthRetrying reports whether another try may get a better answer.
func worthRetrying(resp *http.Response, err error) bool {
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			msg := ue.Error()
			var ce *tls.CertificateVerificationError
			if strings.Contains(msg, "unsupported protocol scheme") || strings.Contains(msg, "invalid header") ||
				strings.Contains(msg, "certificate is not trusted") || errors.As(ue.Err, &ce) {
				return false
			}
		}
		return true
	}
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests, s == http.StatusPreconditionFailed:
		return true
	case s == 0, s >= 500 && s != http.StatusNotImplemented:
		return true
	}
	return false
}

// vaultBackoff waits what a 429 or 503 asks for in Retry-After, and
// otherwise attempt+1 times a random duration between minRetryWait and
// maxRetryWait, so that many clients turned away together do not all come
// back together.
func vaultBackoff(attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return d
		}
	}
	jitter := minRetryWait + rand.N(maxRetryWait-minRetryWait)
	return jitter * time.Duration(attempt+1)
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	at, err := time.Parse(time.RFC1123, h)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}

// drain reads a little of a body that is not wanted, so that its
// connection can be reused, and closes it.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 4096))
	body.Close()
}

// parseSecret reads Vault's JSON answer, keeping numbers as json.Number
// so that a TTL, a version or a number stored in a secret reads exactly as
// written. No body is (nil, nil). A body with none of an answer's fields
// is taken as raw data, unless all it has is errors.
func parseSecret(body []byte) (*secret, error) {
	if len(body) == 0 {
		return nil, nil
	}
	var s secret
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	if !reflect.ValueOf(s).IsZero() {
		return &s, nil
	}
	var data map[string]any
	dec = json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		return nil, err
	}
	errs, hasErrors := data["errors"]
	switch {
	case hasErrors && len(data) == 1:
		return nil, nil
	case hasErrors:
		b, err := json.Marshal(errs)
		if err != nil {
			return nil, err
		}
		var list []string
		if err := json.Unmarshal(b, &list); err != nil {
			return nil, err
		}
		return nil, errors.New(strings.Join(list, " "))
	case len(data) > 0:
		s.Data = data
	}
	return &s, nil
}

// tokenPolicies are the policies of the token a lookup answered about:
// its own, then those of its identity.
func (s *secret) tokenPolicies() []string {
	if s.Auth != nil && len(s.Auth.Policies) > 0 {
		return s.Auth.Policies
	}
	if s.Data["policies"] == nil {
		return nil
	}
	own, ok := stringList(s.Data["policies"])
	if !ok {
		return nil
	}
	identity, ok := stringList(s.Data["identity_policies"])
	if !ok {
		return nil
	}
	return append(own, identity...)
}

// stringList reads a JSON array of strings; null is an empty list.
func stringList(v any) ([]string, bool) {
	if v == nil {
		return nil, true
	}
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	var out []string
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// tokenRenewable says whether the token a lookup answered about can be
// renewed; anything unreadable is no.
func (s *secret) tokenRenewable() bool {
	if s.Auth != nil && s.Auth.Renewable {
		return true
	}
	switch v := s.Data["renewable"].(type) {
	case bool:
		return v
	case json.Number:
		b, _ := strconv.ParseBool(v.String())
		return b
	case string:
		b, _ := strconv.ParseBool(v)
		return b
	}
	return false
}

// tokenTTL is what is left of the token a lookup answered about: a
// number of seconds, or a duration such as "1h" or "7d"; 0 when unknown.
func (s *secret) tokenTTL() time.Duration {
	if s.Auth != nil && s.Auth.LeaseDuration > 0 {
		return time.Duration(s.Auth.LeaseDuration) * time.Second
	}
	var text string
	switch v := s.Data["ttl"].(type) {
	case json.Number:
		text = v.String()
	case string:
		text = v
	default:
		return 0
	}
	times := func(n int64, unit time.Duration) time.Duration {
		d := time.Duration(n) * unit
		if d/unit != time.Duration(n) {
			return 0 // overflow
		}
		return d
	}
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return times(n, time.Second)
	}
	if days, ok := strings.CutSuffix(text, "d"); ok {
		n, _ := strconv.ParseInt(days, 10, 64)
		return times(n, 24*time.Hour)
	}
	d, _ := time.ParseDuration(text)
	return d
}

// apiBase is where requests to address go. A unix:// address is a socket,
// dialled by the transport; requests then go to http://localhost.
func apiBase(address string) url.URL {
	if strings.HasPrefix(address, "unix://") {
		return url.URL{Scheme: "http", Host: "localhost"}
	}
	// resolveConnection has checked that it parses.
	u, _ := url.Parse(address)
	return url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: u.Path}
}

// newTransport is a transport for one host, reused: keep-alive
// connections pooled, HTTP/2 where TLS offers it, and the dial and
// handshake timeouts of the vault CLI.
func newTransport(proxy func(*http.Request) (*url.URL, error)) *http.Transport {
	return &http.Transport{
		Proxy: proxy,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// tlsConfig is the TLS set-up of conn: its client certificate, its CA
// (a file, PEM text, or a directory, in that order of precedence; the
// system's roots when none), server name and verification. Errors read as
// the vault CLI's.
func tlsConfig(conn connection) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if conn.clientCert != "" && conn.clientKey != "" {
		cert, err := tls.LoadX509KeyPair(conn.clientCert, conn.clientKey)
		if err != nil {
			return nil, err
		}
		// Whatever CAs the server names: a cert auth mount may trust CAs
		// that the server's own certificate is not from.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	var err error
	switch {
	case conn.caCert != "":
		cfg.RootCAs, err = caFile(conn.caCert)
	case conn.caCertBytes != "":
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM([]byte(conn.caCertBytes)) {
			err = errors.New("Error appending CA: Couldn't parse PEM")
		}
	case conn.caPath != "":
		cfg.RootCAs, err = caDir(conn.caPath)
	}
	if err != nil {
		return nil, err
	}
	cfg.InsecureSkipVerify = conn.skipVerify
	cfg.ServerName = conn.serverName
	return cfg, nil
}

func caFile(name string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("Error loading CA File: %s", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("Error loading CA File: Couldn't parse PEM in: %s", name)
	}
	return pool, nil
}

// caDir reads every file under dir, each of which must hold a PEM
// certificate.
func caDir(dir string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	err := filepath.Walk(dir, func(name string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		pem, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("Error loading file from CAPath: %s", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("Error loading CA Path: Couldn't parse PEM in: %s", name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pool, nil
}
