package vault

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// apiServer answers every request with reply(n, r, body), n counting the
// requests from 1; a zero status is 200. It records what it was sent.
type apiServer struct {
	reply func(n int, r *http.Request, body []byte) (status int, header http.Header, answer string)

	mu       sync.Mutex
	requests []sentRequest
	conns    atomic.Int32
	srv      *httptest.Server
}

type sentRequest struct {
	method, path, query string
	header              http.Header
	body                string
	at                  time.Time
}

func newAPIServer(t *testing.T, reply func(n int, r *http.Request, body []byte) (int, http.Header, string)) *apiServer {
	t.Helper()
	s := &apiServer{reply: reply}
	s.srv = httptest.NewUnstartedServer(s)
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests = append(s.requests, sentRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body), time.Now()})
	n := len(s.requests)
	s.mu.Unlock()
	status, header, answer := s.reply(n, r, body)
	for k, v := range header {
		w.Header()[k] = v
	}
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (s *apiServer) sent() []sentRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sentRequest(nil), s.requests...)
}

// always answers every request alike.
func always(status int, answer string) func(int, *http.Request, []byte) (int, http.Header, string) {
	return func(int, *http.Request, []byte) (int, http.Header, string) { return status, nil, answer }
}

// waits records the backoff a client asks for, and waits a fixed short
// time instead, so that a test of retries takes milliseconds.
type waits struct {
	mu       sync.Mutex
	attempts []int
	statuses []int // 0: no answer
}

const shortWait = 20 * time.Millisecond

func (w *waits) backoff(attempt int, resp *http.Response) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.attempts = append(w.attempts, attempt)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	w.statuses = append(w.statuses, status)
	return shortWait * time.Duration(attempt+1)
}

// testClient is the client a provider configured with vars builds for
// address, with the token t and fast, recorded retries.
func testClient(t *testing.T, address string, vars map[string]string) (*client, *waits) {
	t.Helper()
	env := map[string]string{"VAULT_ADDR": address}
	for k, v := range vars {
		env[k] = v
	}
	p := newProvider(t, "{}", newEnv(env))
	c, err := p.newClient("t")
	if err != nil {
		t.Fatal(err)
	}
	w := &waits{}
	c.backoff = w.backoff
	return c, w
}

// oracle is the vault CLI's own client for address, token t, no retries.
func oracle(t *testing.T, address string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: address, MaxRetries: 0})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("t")
	return c
}

func TestClientRetries(t *testing.T) {
	for _, tc := range []struct {
		status   int
		attempts int
	}{
		{500, 3}, {502, 3}, {503, 3}, {504, 3},
		{412, 3}, // a performance standby without the index asked for yet
		{429, 3},
		{501, 1}, {400, 1}, {403, 1}, {405, 1},
	} {
		s := newAPIServer(t, always(tc.status, `{"errors":["no"]}`))
		c, w := testClient(t, s.srv.URL, nil)
		_, err := c.lookupSelf(context.Background())
		if got := len(s.sent()); got != tc.attempts {
			t.Errorf("%d: %d attempts, want %d", tc.status, got, tc.attempts)
		}
		if statusOf(err) != tc.status || vaultSays(err) != "no" {
			t.Errorf("%d: got %v, want Vault's answer after the last attempt", tc.status, err)
		}
		if tc.attempts > 1 && (!reflect.DeepEqual(w.attempts, []int{0, 1}) || !reflect.DeepEqual(w.statuses, []int{tc.status, tc.status})) {
			t.Errorf("%d: backoff asked for attempts %v after %v, want 0 and 1 after %d", tc.status, w.attempts, w.statuses, tc.status)
		}
	}
}

func TestClientRetriesUntilVaultAnswers(t *testing.T) {
	s := newAPIServer(t, func(n int, _ *http.Request, _ []byte) (int, http.Header, string) {
		if n < 3 {
			return 503, nil, `{"errors":["Vault is sealed"]}`
		}
		return 200, nil, `{"data":{"policies":["default"]}}`
	})
	c, _ := testClient(t, s.srv.URL, nil)
	sec, err := c.lookupSelf(context.Background())
	if err != nil || sec.tokenPolicies()[0] != "default" {
		t.Fatalf("got %v %v, want the third answer", sec, err)
	}
	sent := s.sent()
	// The waits grow with the attempt: the first retry waits one backoff,
	// the second two.
	for i, want := range []time.Duration{shortWait, 2 * shortWait} {
		if gap := sent[i+1].at.Sub(sent[i].at); gap < want {
			t.Errorf("retry %d came %v after the previous attempt, want at least %v", i+1, gap, want)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections for three attempts: a refused answer must leave its connection reusable", n)
	}
}

func TestClientMaxRetries(t *testing.T) {
	for _, tc := range []struct {
		retries  string
		attempts int
	}{{"0", 1}, {"1", 2}, {"4", 5}} {
		s := newAPIServer(t, always(500, `{"errors":["boom"]}`))
		c, _ := testClient(t, s.srv.URL, map[string]string{"VAULT_MAX_RETRIES": tc.retries})
		_, _ = c.lookupSelf(context.Background())
		if got := len(s.sent()); got != tc.attempts {
			t.Errorf("VAULT_MAX_RETRIES=%s: %d attempts, want %d", tc.retries, got, tc.attempts)
		}
	}
}

func TestClientRetriesWithoutAnAnswer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Close()
		}
	}()
	c, w := testClient(t, "http://"+l.Addr().String(), nil)
	_, err = c.read(context.Background(), "secret/data/app", nil)
	if statusOf(err) != 0 || !isUnavailable(err) {
		t.Fatalf("got %v, want an error without a status, which means unavailable", err)
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections accepted, want 3 attempts", n)
	}
	if !reflect.DeepEqual(w.statuses, []int{0, 0}) {
		t.Errorf("backoff saw answers %v, want none", w.statuses)
	}
}

func TestClientSendsTheBodyOnEveryAttempt(t *testing.T) {
	s := newAPIServer(t, func(n int, _ *http.Request, _ []byte) (int, http.Header, string) {
		if n < 3 {
			return 502, nil, "<html>bad gateway</html>"
		}
		return 200, nil, `{"lease_id":"database/creds/app/1","lease_duration":60,"renewable":true}`
	})
	c, _ := testClient(t, s.srv.URL, nil)
	sec, err := c.renewLease(context.Background(), "database/creds/app/1", 60)
	if err != nil || sec.LeaseDuration != 60 {
		t.Fatalf("got %+v %v", sec, err)
	}
	for i, r := range s.sent() {
		var body map[string]any
		if err := json.Unmarshal([]byte(r.body), &body); err != nil || body["lease_id"] != "database/creds/app/1" || body["increment"] != 60.0 {
			t.Errorf("attempt %d: %s %s with body %q", i+1, r.method, r.path, r.body)
		}
		if r.method != http.MethodPut || r.path != "/v1/sys/leases/renew" {
			t.Errorf("attempt %d: %s %s", i+1, r.method, r.path)
		}
	}
}

func TestClientHonoursRetryAfter(t *testing.T) {
	s := newAPIServer(t, func(n int, _ *http.Request, _ []byte) (int, http.Header, string) {
		if n == 1 {
			return 429, http.Header{"Retry-After": {"0"}}, `{"errors":["request rate limit quota exceeded"]}`
		}
		return 200, nil, `{"data":{"A":"b"}}`
	})
	c, _ := testClient(t, s.srv.URL, nil)
	c.backoff = vaultBackoff
	start := time.Now()
	sec, err := c.read(context.Background(), "kv/app", nil)
	if err != nil || sec.Data["A"] != "b" {
		t.Fatalf("got %v %v", sec, err)
	}
	// Without Retry-After the first retry waits at least minRetryWait.
	if d := time.Since(start); d >= minRetryWait {
		t.Errorf("the retry came after %v; Retry-After: 0 asked for none", d)
	}
}

func TestVaultBackoff(t *testing.T) {
	for attempt := range 3 {
		for range 20 {
			d := vaultBackoff(attempt, nil)
			lo, hi := minRetryWait*time.Duration(attempt+1), maxRetryWait*time.Duration(attempt+1)
			if d < lo || d >= hi {
				t.Fatalf("attempt %d waits %v, want [%v, %v)", attempt, d, lo, hi)
			}
		}
	}
	answer := func(status int, retryAfter string) *http.Response {
		return &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {retryAfter}}}
	}
	if d := vaultBackoff(0, answer(429, "7")); d != 7*time.Second {
		t.Errorf("429 with Retry-After: 7 waits %v", d)
	}
	if d := vaultBackoff(1, answer(503, "30")); d != 30*time.Second {
		t.Errorf("503 with Retry-After: 30 waits %v", d)
	}
	for _, resp := range []*http.Response{answer(500, "7"), answer(429, "-1"), answer(429, "soon")} {
		if d := vaultBackoff(0, resp); d < minRetryWait || d >= maxRetryWait {
			t.Errorf("%d with Retry-After %q waits %v, want the usual backoff", resp.StatusCode, resp.Header.Get("Retry-After"), d)
		}
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if d, ok := retryAfter(now.Add(90*time.Second).Format(time.RFC1123), now); !ok || d != 90*time.Second {
		t.Errorf("an HTTP date 90 s ahead: %v %v", d, ok)
	}
	if d, ok := retryAfter(now.Add(-time.Minute).Format(time.RFC1123), now); !ok || d != 0 {
		t.Errorf("an HTTP date gone by: %v %v, want no wait", d, ok)
	}
}

func TestClientCancelStopsTheWait(t *testing.T) {
	s := newAPIServer(t, always(503, `{"errors":["Vault is sealed"]}`))
	c, _ := testClient(t, s.srv.URL, nil)
	c.backoff = func(int, *http.Response) time.Duration { return time.Hour }
	// read returns what a read of c under ctx returns, or fails the test
	// when it is still waiting after a few seconds.
	read := func(ctx context.Context) error {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := c.read(ctx, "secret/data/app", nil)
			done <- err
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("still waiting to retry")
			return nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(s.sent()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if err := read(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	// VAULT_CLIENT_TIMEOUT bounds the waits too.
	c.timeout = 50 * time.Millisecond
	if err := read(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the client timeout", err)
	}
}

func TestClientFollowsOneRedirectWithTheToken(t *testing.T) {
	active := newAPIServer(t, func(_ int, r *http.Request, body []byte) (int, http.Header, string) {
		return 200, nil, `{"auth":{"client_token":"new","lease_duration":3600,"renewable":true,"policies":["app"]}}`
	})
	standby := newAPIServer(t, func(_ int, r *http.Request, _ []byte) (int, http.Header, string) {
		return 307, http.Header{"Location": {active.srv.URL + r.URL.Path}}, ""
	})
	c, _ := testClient(t, standby.srv.URL, map[string]string{"VAULT_NAMESPACE": "team-a"})
	sec, err := c.write(context.Background(), "auth/approle/login", map[string]any{"role_id": "r"})
	if err != nil || sec.Auth == nil || sec.Auth.ClientToken != "new" || sec.Auth.LeaseDuration != 3600 {
		t.Fatalf("got %+v %v", sec, err)
	}
	got := active.sent()
	if len(got) != 1 {
		t.Fatalf("the active node got %d requests", len(got))
	}
	r := got[0]
	if r.method != http.MethodPut || r.path != "/v1/auth/approle/login" || r.body != `{"role_id":"r"}` {
		t.Errorf("redirected request: %s %s %q", r.method, r.path, r.body)
	}
	for k, want := range map[string]string{"X-Vault-Token": "t", "X-Vault-Namespace": "team-a", "X-Vault-Request": "true"} {
		if v := r.header.Get(k); v != want {
			t.Errorf("redirected request: %s %q, want %q", k, v, want)
		}
	}

	// The query goes along; a second redirect is not followed, as the
	// vault CLI does not: its answer reads as nothing there.
	third := newAPIServer(t, always(200, `{"data":{"A":"b"}}`))
	second := newAPIServer(t, func(_ int, r *http.Request, _ []byte) (int, http.Header, string) {
		return 307, http.Header{"Location": {third.srv.URL + r.URL.Path}}, ""
	})
	first := newAPIServer(t, func(_ int, r *http.Request, _ []byte) (int, http.Header, string) {
		return 307, http.Header{"Location": {second.srv.URL + r.URL.Path}}, ""
	})
	c, _ = testClient(t, first.srv.URL, nil)
	sec, err = c.read(context.Background(), "secret/data/app", url.Values{"version": {"2"}})
	want, wantErr := oracle(t, first.srv.URL).Logical().ReadWithData("secret/data/app", map[string][]string{"version": {"2"}})
	if sec != nil || err != nil || want != nil || wantErr != nil {
		t.Errorf("after two redirects: got %v %v, the vault CLI's client %v %v; want nothing for both", sec, err, want, wantErr)
	}
	if r := second.sent(); len(r) != 2 || r[0].query != "version=2" || r[0].header.Get("X-Vault-Token") != "t" {
		t.Errorf("second node got %+v", r)
	}
	if n := len(third.sent()); n != 0 {
		t.Errorf("a second redirect was followed (%d requests)", n)
	}
}

func TestClientRefusesARedirectToPlainHTTP(t *testing.T) {
	plain := newAPIServer(t, always(200, `{"data":{"A":"b"}}`))
	standby := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer standby.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: standby.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := testClient(t, standby.URL, map[string]string{"VAULT_CACERT": ca})
	_, err := c.read(context.Background(), "secret/data/app", nil)
	if err == nil || err.Error() != "redirect would cause protocol downgrade" {
		t.Errorf("got %v", err)
	}
	if n := len(plain.sent()); n != 0 {
		t.Errorf("the token went over plain HTTP (%d requests)", n)
	}
}

func TestClientHeaders(t *testing.T) {
	s := newAPIServer(t, always(200, `{"data":{}}`))
	c, _ := testClient(t, s.srv.URL, map[string]string{"VAULT_NAMESPACE": "team-a/child"})
	if _, err := c.read(context.Background(), "secret/data/app", nil); err != nil {
		t.Fatal(err)
	}
	c.namespace = ""
	c.setToken("")
	if _, err := c.write(context.Background(), "auth/userpass/login/u", map[string]any{"password": "p"}); err != nil {
		t.Fatal(err)
	}
	got := s.sent()
	h := got[0].header
	if h.Get("X-Vault-Token") != "t" || h.Get("X-Vault-Namespace") != "team-a/child" || h.Get("X-Vault-Request") != "true" {
		t.Errorf("headers %v", h)
	}
	h = got[1].header
	if _, ok := h["X-Vault-Token"]; ok {
		t.Errorf("a request without a token sent X-Vault-Token %q", h.Get("X-Vault-Token"))
	}
	if _, ok := h["X-Vault-Namespace"]; ok || h.Get("X-Vault-Request") != "true" {
		t.Errorf("headers without namespace %v", h)
	}

	c.setToken("bad\ntoken")
	_, err := c.read(context.Background(), "secret/data/app", nil)
	if err == nil || err.Error() != "configured Vault token contains non-printable characters and cannot be used" {
		t.Errorf("a token with a newline: %v", err)
	}
	if n := len(s.sent()); n != 2 {
		t.Errorf("a token with a newline was sent")
	}
}

func TestClientKeepsNumbersAsWritten(t *testing.T) {
	s := newAPIServer(t, always(200, `{"lease_id":"l","lease_duration":2764800,"renewable":false,
		"data":{"port":5432,"big":12345678901234567890,"ratio":1.50,"exp":1e3,"nested":{"n":1.0,"url":"a&b<c>"}}}`))
	c, _ := testClient(t, s.srv.URL, nil)
	sec, err := c.read(context.Background(), "kv/app", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sec.LeaseDuration != 2764800 || sec.LeaseID != "l" {
		t.Errorf("lease %q %d", sec.LeaseID, sec.LeaseDuration)
	}
	got := map[string]string{}
	for k, f := range fields(sec.Data) {
		got[k] = f.Value.Reveal()
	}
	want := map[string]string{"port": "5432", "big": "12345678901234567890", "ratio": "1.50", "exp": "1e3", "nested": `{"n":1.0,"url":"a&b<c>"}`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields %v, want %v", got, want)
	}
}

func TestClientTokenLookup(t *testing.T) {
	s := newAPIServer(t, always(200, `{"data":{"policies":["default","app"],"identity_policies":["team"],"renewable":true,"ttl":2764790,"creation_ttl":2764800}}`))
	c, _ := testClient(t, s.srv.URL, nil)
	sec, err := c.lookupSelf(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, err := oracle(t, s.srv.URL).Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	wantPolicies, _ := want.TokenPolicies()
	wantRenewable, _ := want.TokenIsRenewable()
	wantTTL, _ := want.TokenTTL()
	if p := sec.tokenPolicies(); !reflect.DeepEqual(p, wantPolicies) || !reflect.DeepEqual(p, []string{"default", "app", "team"}) {
		t.Errorf("policies %v, the vault CLI's client %v", p, wantPolicies)
	}
	if sec.tokenRenewable() != wantRenewable || !wantRenewable {
		t.Errorf("renewable %v, the vault CLI's client %v", sec.tokenRenewable(), wantRenewable)
	}
	if sec.tokenTTL() != wantTTL || wantTTL != 2764790*time.Second {
		t.Errorf("ttl %v, the vault CLI's client %v", sec.tokenTTL(), wantTTL)
	}
	for _, ttl := range []any{"1h", "7d", "90", json.Number("30"), "soon", nil} {
		a := &secret{Data: map[string]any{"ttl": ttl}}
		b := &api.Secret{Data: map[string]any{"ttl": ttl}}
		want, _ := b.TokenTTL()
		if got := a.tokenTTL(); got != want {
			t.Errorf("ttl %v: %v, the vault CLI's client %v", ttl, got, want)
		}
	}
	for _, renewable := range []any{true, false, "true", "0", json.Number("1"), json.Number("2"), "", nil} {
		a := &secret{Data: map[string]any{"renewable": renewable}}
		b := &api.Secret{Data: map[string]any{"renewable": renewable}}
		want, _ := b.TokenIsRenewable()
		if got := a.tokenRenewable(); got != want {
			t.Errorf("renewable %#v: %v, the vault CLI's client %v", renewable, got, want)
		}
	}
}

// TestClientReadsAnswersAsTheVaultCLI puts the same answers to this client
// and to the vault CLI's own: both must find the same secret or nothing,
// and fail alike.
func TestClientReadsAnswersAsTheVaultCLI(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"secret", 200, `{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":{"A":"b","n":1},"wrap_info":null,"warnings":null,"auth":null}`},
		{"leased", 200, `{"lease_id":"database/creds/app/x","renewable":true,"lease_duration":60,"data":{"username":"u"}}`},
		{"only a request id", 200, `{"request_id":"r","data":null}`},
		{"raw JSON", 200, `{"initialized":true,"sealed":false}`},
		{"errors with data", 200, `{"errors":["one","two"],"A":"b"}`},
		{"only errors", 200, `{"errors":[]}`},
		{"null", 200, `null`},
		{"no content", 204, ``},
		{"not JSON", 200, `<html>`},
		{"nothing there", 404, `{"errors":[]}`},
		{"deleted version", 404, `{"data":{"data":null,"metadata":{"version":3,"deletion_time":"2026-01-01T00:00:00Z","destroyed":false}}}`},
		{"warnings", 404, `{"warnings":["w"]}`},
		{"404 page", 404, `<html>not found</html>`},
		{"404 empty", 404, ``},
		{"denied", 403, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`},
		{"bad gateway", 502, `<html>bad gateway</html>`},
	} {
		s := newAPIServer(t, always(tc.status, tc.body))
		c, _ := testClient(t, s.srv.URL, map[string]string{"VAULT_MAX_RETRIES": "0"})
		o := oracle(t, s.srv.URL)
		got, err := c.read(context.Background(), "kv/app", nil)
		want, wantErr := o.Logical().Read("kv/app")
		sameSecret(t, tc.name+": read", got, err, want, wantErr)

		got, err = c.write(context.Background(), "kv/app", map[string]any{"A": "b"})
		want, wantErr = o.Logical().Write("kv/app", map[string]any{"A": "b"})
		sameSecret(t, tc.name+": write", got, err, want, wantErr)
	}
}

func sameSecret(t *testing.T, what string, got *secret, err error, want *api.Secret, wantErr error) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Errorf("%s: secret %+v, the vault CLI's client %+v", what, got, want)
	} else if got != nil {
		if !reflect.DeepEqual(got.Data, want.Data) || got.LeaseID != want.LeaseID || got.LeaseDuration != want.LeaseDuration ||
			got.Renewable != want.Renewable || !reflect.DeepEqual(got.Warnings, want.Warnings) {
			t.Errorf("%s: secret %+v, the vault CLI's client %+v", what, got, want)
		}
	}
	var re *api.ResponseError
	switch {
	case (err == nil) != (wantErr == nil):
		t.Errorf("%s: error %v, the vault CLI's client %v", what, err, wantErr)
	case errors.As(wantErr, &re):
		if statusOf(err) != re.StatusCode || err.Error() != wantErr.Error() {
			t.Errorf("%s: error %q, the vault CLI's client %q", what, err, wantErr)
		}
	case err != nil && err.Error() != wantErr.Error():
		t.Errorf("%s: error %q, the vault CLI's client %q", what, err, wantErr)
	}
}

func TestClientErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		status int
		header http.Header
		body   string
		says   string
	}{
		{403, nil, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`, "permission denied"},
		{400, nil, `{"errors":["check-and-set parameter did not match the current version"]}`, "check-and-set parameter did not match the current version"},
		{503, nil, `{"errors":["Vault is sealed"]}`, "Vault is sealed"},
		{400, nil, `{"errors":["2 errors occurred:\n\t* a\n\t* b\n\n"]}`, "a; b"},
		{502, nil, `<html><body>Bad Gateway: secret=hunter2</body></html>`, "HTTP 502"},
		{500, nil, `{"errors":[]}`, "HTTP 500"},
		{400, http.Header{"X-Vault-Namespace": {"team-a/"}}, `{"errors":["bad"]}`, "bad"},
	} {
		s := newAPIServer(t, func(int, *http.Request, []byte) (int, http.Header, string) { return tc.status, tc.header, tc.body })
		c, _ := testClient(t, s.srv.URL, map[string]string{"VAULT_MAX_RETRIES": "0"})
		_, err := c.write(context.Background(), "secret/data/app", map[string]any{"data": map[string]any{}})
		_, wantErr := oracle(t, s.srv.URL).Logical().Write("secret/data/app", map[string]any{"data": map[string]any{}})
		if got := vaultSays(err); got != tc.says {
			t.Errorf("%d %s: says %q, want %q", tc.status, tc.body, got, tc.says)
		}
		if statusOf(err) != tc.status {
			t.Errorf("%d: status %d", tc.status, statusOf(err))
		}
		if wantErr == nil || err.Error() != wantErr.Error() {
			t.Errorf("%d: error text %q, the vault CLI's %q", tc.status, err, wantErr)
		}
	}
}

func TestTLSSettingsFailAsTheVaultCLI(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	caDirWithJunk := filepath.Join(dir, "cas")
	if err := os.Mkdir(caDirWithJunk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(caDirWithJunk, "junk.pem"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name string
		conn connection
		tls  api.TLSConfig
	}{
		{"CA file missing", connection{caCert: missing}, api.TLSConfig{CACert: missing}},
		{"CA file not PEM", connection{caCert: notPEM}, api.TLSConfig{CACert: notPEM}},
		{"CA bytes not PEM", connection{caCertBytes: "junk"}, api.TLSConfig{CACertBytes: []byte("junk")}},
		{"CA path missing", connection{caPath: missing}, api.TLSConfig{CAPath: missing}},
		{"CA path with junk", connection{caPath: caDirWithJunk}, api.TLSConfig{CAPath: caDirWithJunk}},
		{"client cert missing", connection{clientCert: missing, clientKey: notPEM}, api.TLSConfig{ClientCert: missing, ClientKey: notPEM}},
		{"client cert not PEM", connection{clientCert: notPEM, clientKey: notPEM}, api.TLSConfig{ClientCert: notPEM, ClientKey: notPEM}},
	} {
		_, err := tlsConfig(tc.conn)
		wantErr := api.DefaultConfig().ConfigureTLS(&tc.tls)
		if err == nil || wantErr == nil || err.Error() != wantErr.Error() {
			t.Errorf("%s: %v, the vault CLI's client %v", tc.name, err, wantErr)
		}
	}
	cfg, err := tlsConfig(connection{serverName: "vault.internal", skipVerify: true})
	if err != nil || cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != "vault.internal" || !cfg.InsecureSkipVerify || cfg.RootCAs != nil {
		t.Errorf("got %+v %v: want TLS 1.2 at least, the server name, no verification, the system's roots", cfg, err)
	}
}

func TestClientOverAUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "vault")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	requests := make(chan string, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests <- r.Host + " " + r.URL.Path
		_, _ = io.WriteString(w, `{"data":{"A":"b"}}`)
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	c, _ := testClient(t, "unix://"+socket, nil)
	sec, err := c.read(context.Background(), "secret/app", nil)
	if err != nil || sec.Data["A"] != "b" {
		t.Fatalf("got %v %v", sec, err)
	}
	if r := <-requests; r != "localhost /v1/secret/app" {
		t.Errorf("request to %q", r)
	}
}

func TestClientUnderAPathPrefix(t *testing.T) {
	s := newAPIServer(t, always(200, `{"data":{"A":"b"}}`))
	c, _ := testClient(t, s.srv.URL+"/vault/", nil)
	if _, err := c.read(context.Background(), "secret/my app", url.Values{"version": {"1"}}); err != nil {
		t.Fatal(err)
	}
	if r := s.sent()[0]; r.path != "/vault/v1/secret/my app" || r.query != "version=1" {
		t.Errorf("request to %q ? %q", r.path, r.query)
	}
}

func TestClientThroughVaultProxyAddr(t *testing.T) {
	s := newAPIServer(t, always(200, `{"data":{"A":"b"}}`))
	c, _ := testClient(t, "http://vault.invalid:8200", map[string]string{"VAULT_PROXY_ADDR": s.srv.URL})
	sec, err := c.read(context.Background(), "secret/app", nil)
	if err != nil || sec.Data["A"] != "b" {
		t.Fatalf("through the proxy: %v %v", sec, err)
	}
	if r := s.sent()[0]; r.path != "/v1/secret/app" || r.header.Get("X-Vault-Token") != "t" {
		t.Errorf("the proxy got %q with token %q", r.path, r.header.Get("X-Vault-Token"))
	}
}
