package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

// fakeVault answers the few endpoints a test needs, as Vault documents
// them, and records what it was asked. Namespaces are an Enterprise
// feature, so their header is checked here rather than against the real
// server.
type fakeVault struct {
	mu         sync.Mutex
	requests   []string
	namespaces map[string]bool
	tokens     map[string]bool
	bodies     map[string]map[string]any
	// renewGrant is the lease_duration a lease renewal returns.
	renewGrant int
	// tokenGrant is the lease_duration a token renewal returns.
	tokenGrant int
	// leaseRenewable is whether the leases of database/creds/app are.
	leaseRenewable bool
	leases         int
	logins         int
	server         *httptest.Server
}

func newFakeVault(t *testing.T) *fakeVault {
	f := &fakeVault{namespaces: map[string]bool{}, tokens: map[string]bool{}, bodies: map[string]map[string]any{}, renewGrant: 60, tokenGrant: 3600, leaseRenewable: true}
	f.server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.server.Close)
	return f
}

func (f *fakeVault) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.namespaces[r.Header.Get("X-Vault-Namespace")] = true
	f.tokens[r.Header.Get("X-Vault-Token")] = true
	var body map[string]any
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		_ = json.Unmarshal(b, &body)
	}
	f.bodies[r.URL.Path] = body
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	switch p := strings.TrimPrefix(r.URL.Path, "/v1/"); {
	case strings.HasPrefix(p, "sys/internal/ui/mounts/secret"):
		reply(map[string]any{"data": map[string]any{"path": "secret/", "type": "kv", "options": map[string]any{"version": "2"}}})
	case strings.HasPrefix(p, "sys/internal/ui/mounts/database"):
		reply(map[string]any{"data": map[string]any{"path": "database/", "type": "database"}})
	case p == "secret/data/app":
		reply(map[string]any{"data": map[string]any{"data": map[string]any{"A": "b"}, "metadata": map[string]any{"version": 1}}})
	case p == "database/creds/app":
		f.leases++
		reply(map[string]any{"lease_id": fmt.Sprintf("database/creds/app/%d", f.leases), "lease_duration": 60, "renewable": f.leaseRenewable,
			"data": map[string]any{"username": fmt.Sprintf("u%d", f.leases), "password": "p"}})
	case p == "sys/leases/renew":
		reply(map[string]any{"lease_id": body["lease_id"], "lease_duration": f.renewGrant, "renewable": true})
	case p == "auth/kubernetes/login" || p == "auth/k8s-prod/login":
		f.logins++
		reply(map[string]any{"auth": map[string]any{"client_token": fmt.Sprintf("k8s-token-%d", f.logins), "lease_duration": 3600, "renewable": true, "policies": []string{"default"}}})
	case p == "auth/token/renew-self":
		reply(map[string]any{"auth": map[string]any{"client_token": r.Header.Get("X-Vault-Token"), "lease_duration": f.tokenGrant, "renewable": true}})
	case p == "auth/token/lookup-self":
		reply(map[string]any{"data": map[string]any{"policies": []string{"default"}, "ttl": 0, "renewable": false}})
	default:
		w.WriteHeader(http.StatusNotFound)
		reply(map[string]any{"errors": []string{}})
	}
}

func (f *fakeVault) count(req string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r == req {
			n++
		}
	}
	return n
}

func TestNamespaceHeader(t *testing.T) {
	// The process environment must not reach the provider behind Env.
	t.Setenv("VAULT_NAMESPACE", "from-process")
	t.Setenv("VAULT_TOKEN", "process-token")
	for _, tc := range []struct{ yaml, env, want string }{
		{"namespace: team-a", "", "team-a"},
		{"namespace: team-a", "ignored-env", "team-a"},
		{"{}", "team-b/child", "team-b/child"},
	} {
		f := newFakeVault(t)
		p := newProvider(t, tc.yaml, newEnv(map[string]string{"VAULT_ADDR": f.server.URL, "VAULT_TOKEN": "env-token", "VAULT_NAMESPACE": tc.env}))
		if r := fetchOne(t, p, "path: secret/app"); r.Err != nil || values(r)["A"] != "b" {
			t.Fatalf("%s: %v", tc.yaml, r.Err)
		}
		f.mu.Lock()
		if len(f.namespaces) != 1 || !f.namespaces[tc.want] {
			t.Errorf("%s with VAULT_NAMESPACE=%q: namespaces sent %v, want only %q", tc.yaml, tc.env, f.namespaces, tc.want)
		}
		if len(f.tokens) != 1 || !f.tokens["env-token"] {
			t.Errorf("tokens sent %v, want only the one from Env", f.tokens)
		}
		f.mu.Unlock()
	}
}

func TestStrictOptions(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"adress: http://x", `unknown key "adress"`},
		{"auth:\n  method: approle\n  role: x\n  role_id: y", "role does not apply to method approle"},
		{"auth:\n  method: github", "not one of"},
		{"auth:\n  metod: token", `unknown key "metod"`},
		{"address: vault.example.com", "not a URL"},
		{"client_cert: /c.pem", "client_cert and client_key go together"},
		{"max_concurrency: -1", "at least 1"},
		{"revoke_on_exit: maybe", "want true or false"},
	} {
		opts, err := config.OptionsFromYAML(tc.yaml)
		if err != nil {
			t.Fatal(err)
		}
		_, err = New("test", opts, newEnv(nil).env())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.yaml, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "test.yaml:") {
			t.Errorf("%q: error %q does not name file:line:col", tc.yaml, err)
		}
	}
	p := newProvider(t, "{}", newEnv(nil))
	for _, tc := range []struct{ yaml, want string }{
		{"path: secret/app\npth: x", `unknown key "pth"`},
		{"keys: [A]", "missing `path:`"},
		{"path: secret/app\nversion: latest", "a KV v2 version is a number"},
		{"path: secret/../sys", ".. segment"},
	} {
		_, err := config.SourceFromYAML(p, "test", tc.yaml)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("source %q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestMissingLoginValuesFailAtLogin(t *testing.T) {
	// role_id is typically ${VAR}: empty when another environment is
	// checked, so New accepts it and the login says what is missing.
	p := newProvider(t, "auth:\n  method: approle\n  role_id: \"\"", newEnv(map[string]string{"VAULT_ADDR": "http://127.0.0.1:1"}))
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "path: secret/app")})
	if !errors.Is(err, providers.ErrAuth) || !strings.Contains(err.Error(), "needs role_id") {
		t.Errorf("got %v", err)
	}
}

func TestEnvironmentDefaults(t *testing.T) {
	e := newEnv(map[string]string{"VAULT_ADDR": "https://vault.example:8200", "VAULT_SKIP_VERIFY": "true", "VAULT_MAX_RETRIES": "5", "VAULT_CLIENT_TIMEOUT": "7"})
	p := newProvider(t, "{}", e)
	if p.conn.address != "https://vault.example:8200" || !p.conn.skipVerify || p.conn.maxRetries != 5 || p.conn.timeout != 7*time.Second {
		t.Errorf("VAULT_* not applied: %+v", p.conn)
	}
	if !strings.Contains(e.stderr.String(), "secretrun: warning:") || !strings.Contains(e.stderr.String(), "verification is OFF") {
		t.Errorf("no loud warning for skipped TLS verification: %q", e.stderr)
	}
	p = newProvider(t, "address: https://config.example", newEnv(map[string]string{"VAULT_ADDR": "https://env.example"}))
	if p.conn.address != "https://config.example" {
		t.Errorf("the config's address must win over VAULT_ADDR, got %s", p.conn.address)
	}
	p = newProvider(t, "{}", newEnv(nil))
	if p.conn.address != defaultAddress || p.conn.maxConcurrent != 8 {
		t.Errorf("defaults: %+v", p.conn)
	}
}

func TestConstructionIsOffline(t *testing.T) {
	// A CA file that does not exist, an unreachable address: New succeeds,
	// because it reads nothing and dials nothing; the first Fetch fails.
	p := newProvider(t, "address: https://127.0.0.1:1\nca_cert: /nonexistent/ca.pem", newEnv(nil))
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "path: secret/app")})
	if err == nil || !strings.Contains(err.Error(), "tls") {
		t.Errorf("Fetch with a missing CA file: got %v", err)
	}
}

func TestNoToken(t *testing.T) {
	f := newFakeVault(t)
	e := newEnv(map[string]string{"VAULT_ADDR": f.server.URL})
	e.home = t.TempDir()
	p := newProvider(t, "{}", e)
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "path: secret/app")})
	if !errors.Is(err, providers.ErrAuth) || !strings.Contains(err.Error(), "secretrun login test") {
		t.Errorf("got %v, want ErrAuth suggesting secretrun login", err)
	}
	if len(f.requests) != 0 {
		t.Errorf("requests without a token: %v", f.requests)
	}
}

func TestLeaseNearMaxTTLRotates(t *testing.T) {
	f := newFakeVault(t)
	p := newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": f.server.URL, "VAULT_TOKEN": "t"}))
	offset := time.Duration(0)
	p.now = func() time.Time { return time.Now().Add(offset) }
	src := source(t, p, "path: database/creds/app")
	if r := fetchOne(t, p, "path: database/creds/app"); r.Version != "lease-1" || values(r)["username"] != "u1" {
		t.Fatalf("first read: %q %v", r.Version, r.Err)
	}
	offset = 45 * time.Second
	ren := renew(t, p)
	if n := f.count("PUT /v1/sys/leases/renew"); n != 1 || len(ren.Expiring) != 0 {
		t.Fatalf("full renewal: renewals %d, expiring %v", n, ren.Expiring)
	}
	if got := versionsOf(t, p, src); got[0] != "lease-1" {
		t.Fatalf("after a full renewal, label %q, want lease-1", got[0])
	}
	// Vault grants less than asked: the max TTL is near. Rotate.
	offset = 90 * time.Second
	f.mu.Lock()
	f.renewGrant = 12
	f.mu.Unlock()
	ren = renew(t, p)
	if len(ren.Expiring) != 1 || ren.Expiring[0].Ref != "database/creds/app" {
		t.Fatalf("capped renewal: expiring %v, want database/creds/app", ren.Expiring)
	}
	if d := ren.Expiring[0].Expires.Sub(p.now()); d < 11*time.Second || d > 13*time.Second {
		t.Errorf("expiring lease ends in %v, want the 12s Vault granted", d)
	}
	if !ren.Next.IsZero() {
		t.Errorf("Next = %v, want zero: nothing left to renew", ren.Next)
	}
	if got := versionsOf(t, p, src); got[0] != "lease-2" {
		t.Fatalf("capped renewal: label %q, want lease-2", got[0])
	}
	// No more renewals of a lease marked for replacement.
	offset = 95 * time.Second
	renew(t, p)
	if n := f.count("PUT /v1/sys/leases/renew"); n != 2 {
		t.Errorf("renewals = %d, want 2", n)
	}
	r := fetchOne(t, p, "path: database/creds/app")
	if r.Version != "lease-2" || values(r)["username"] != "u2" {
		t.Errorf("after rotation: %q user %s", r.Version, values(r)["username"])
	}
	if got := versionsOf(t, p, src); got[0] != "lease-2" {
		t.Errorf("label after the fresh read = %q, want lease-2", got[0])
	}
	if ren := renew(t, p); len(ren.Expiring) != 0 || ren.Next.IsZero() {
		t.Errorf("after the fresh read: expiring %v, next %v; want none and a renewal point", ren.Expiring, ren.Next)
	}
}

func TestKubernetesLoginAndTokenRenewal(t *testing.T) {
	f := newFakeVault(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("sa-jwt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, "auth:\n  method: kubernetes\n  mount: k8s-prod\n  role: app\n  token_file: "+file, newEnv(map[string]string{"VAULT_ADDR": f.server.URL}))
	offset := time.Duration(0)
	p.now = func() time.Time { return time.Now().Add(offset) }
	src := source(t, p, "path: secret/app")
	if r := fetchOne(t, p, "path: secret/app"); r.Err != nil {
		t.Fatal(r.Err)
	}
	f.mu.Lock()
	body := f.bodies["/v1/auth/k8s-prod/login"]
	tokens := f.tokens
	f.mu.Unlock()
	if body["role"] != "app" || body["jwt"] != "sa-jwt" {
		t.Errorf("login body %v", body)
	}
	if !tokens["k8s-token-1"] {
		t.Errorf("the login token was not used: %v", tokens)
	}
	// Only the token is held, and the child does not use it.
	if p.HoldsLeases() {
		t.Error("HoldsLeases with only a login token")
	}
	ren := renew(t, p)
	if d := ren.Next.Sub(p.now()); d < 30*time.Minute || d > 50*time.Minute {
		t.Errorf("Next in %v, want about two thirds of the token's hour", d)
	}

	// Past two thirds of the token's hour: Versions and Fetch leave it be,
	// Renew renews it in place.
	offset = 50 * time.Minute
	versionsOf(t, p, src)
	fetchOne(t, p, "path: secret/app")
	if n := f.count("PUT /v1/auth/token/renew-self"); n != 0 {
		t.Fatalf("token renewals by Versions and Fetch = %d, want 0", n)
	}
	renew(t, p)
	if n := f.count("PUT /v1/auth/token/renew-self"); n != 1 {
		t.Fatalf("token renewals = %d, want 1", n)
	}
	// The renewal falls short (max TTL): log in again.
	offset = 100 * time.Minute
	f.mu.Lock()
	f.tokenGrant = 60
	f.mu.Unlock()
	renew(t, p)
	if f.count("PUT /v1/auth/k8s-prod/login") != 2 || p.tok.token != "k8s-token-2" {
		t.Errorf("logins = %d, want a second login when the token cannot be renewed", f.count("PUT /v1/auth/k8s-prod/login"))
	}

	// Renew is not called in time and the token runs out: a Fetch logs in
	// again rather than failing.
	offset = 100*time.Minute + 2*time.Hour
	if r := fetchOne(t, p, "path: secret/app"); r.Err != nil {
		t.Fatal(r.Err)
	}
	if f.count("PUT /v1/auth/k8s-prod/login") != 3 || p.tok.token != "k8s-token-3" {
		t.Errorf("logins = %d, want a third login for a Fetch with an expired token", f.count("PUT /v1/auth/k8s-prod/login"))
	}
}

func TestGitHubOIDCNeedsPermission(t *testing.T) {
	gha := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer gha.Close()
	p := newProvider(t, "auth:\n  method: jwt\n  role: ci", newEnv(map[string]string{
		"VAULT_ADDR": "http://127.0.0.1:1", "ACTIONS_ID_TOKEN_REQUEST_URL": gha.URL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "req-token-value",
	}))
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "path: secret/app")})
	if !errors.Is(err, providers.ErrAuth) || !strings.Contains(err.Error(), "id-token: write") {
		t.Errorf("got %v", err)
	}
	if err != nil {
		mustNotContain(t, err, "req-token-value")
	}
}

func TestFetchAndVersionsRenewNothing(t *testing.T) {
	f := newFakeVault(t)
	p := newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": f.server.URL, "VAULT_TOKEN": "t"}))
	offset := time.Duration(0)
	p.now = func() time.Time { return time.Now().Add(offset) }
	src := source(t, p, "path: database/creds/app")
	first := fetchOne(t, p, "path: database/creds/app")
	offset = 45 * time.Second
	again := fetchOne(t, p, "path: database/creds/app")
	versionsOf(t, p, src)
	if n := f.count("PUT /v1/sys/leases/renew"); n != 0 {
		t.Fatalf("Fetch and Versions past the renewal point renewed %d times, want 0", n)
	}
	if values(again)["username"] != values(first)["username"] || !again.Expires.Equal(first.Expires) {
		t.Error("a Fetch of a healthy lease changed it")
	}
	ren := renew(t, p)
	if f.count("PUT /v1/sys/leases/renew") != 1 {
		t.Fatal("Renew past the renewal point did not renew")
	}
	renewed := fetchOne(t, p, "path: database/creds/app")
	if values(renewed)["username"] != values(first)["username"] || !renewed.Expires.After(first.Expires) {
		t.Errorf("after renewal: same user %v, expires moved %v", values(renewed)["username"] == values(first)["username"], renewed.Expires.Sub(first.Expires))
	}
	// Nothing is due now: an early call asks Vault nothing and says the same.
	f.mu.Lock()
	before := len(f.requests)
	f.mu.Unlock()
	if early := renew(t, p); !early.Next.Equal(ren.Next) || len(early.Expiring) != 0 {
		t.Errorf("early Renew: next %v, want %v", early.Next, ren.Next)
	}
	f.mu.Lock()
	after := f.requests[before:]
	f.mu.Unlock()
	if len(after) != 0 {
		t.Errorf("Renew with nothing due sent %v", after)
	}
}

func TestRenewOutageGivesNothingUp(t *testing.T) {
	f := newFakeVault(t)
	p := newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": f.server.URL, "VAULT_TOKEN": "t", "VAULT_MAX_RETRIES": "0"}))
	offset := time.Duration(0)
	p.now = func() time.Time { return time.Now().Add(offset) }
	src := source(t, p, "path: database/creds/app")
	first := fetchOne(t, p, "path: database/creds/app")
	renew(t, p)
	f.server.Close()
	offset = 45 * time.Second
	if _, err := p.Renew(context.Background()); !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("Renew with Vault gone: got %v, want ErrUnavailable", err)
	}
	if got := versionsOf(t, p, src); got[0] != "lease-1" {
		t.Errorf("after an outage, label %q, want lease-1: an outage is no reason to rotate", got[0])
	}
	if r := fetchOne(t, p, "path: database/creds/app"); values(r)["username"] != values(first)["username"] {
		t.Error("after an outage, Fetch gave up the held credentials")
	}
}

func TestHoldsLeases(t *testing.T) {
	for _, tc := range []struct {
		yaml      string
		renewable bool
		want      bool
	}{
		{"{}", true, true},
		{"{}", false, true},
		{"revoke_on_exit: false", true, true},
		// Nothing to renew and nothing to revoke: nothing to stay for.
		{"revoke_on_exit: false", false, false},
	} {
		f := newFakeVault(t)
		f.leaseRenewable = tc.renewable
		p := newProvider(t, tc.yaml, newEnv(map[string]string{"VAULT_ADDR": f.server.URL, "VAULT_TOKEN": "t"}))
		if p.HoldsLeases() {
			t.Fatal("HoldsLeases before any Fetch")
		}
		fetchOne(t, p, "path: secret/app")
		if p.HoldsLeases() {
			t.Fatal("HoldsLeases after reading only KV")
		}
		fetchOne(t, p, "path: database/creds/app")
		if got := p.HoldsLeases(); got != tc.want {
			t.Errorf("%s, renewable %v: HoldsLeases = %v, want %v", tc.yaml, tc.renewable, got, tc.want)
		}
	}
}

func TestRenewAndCloseBeforeFetch(t *testing.T) {
	f := newFakeVault(t)
	p := newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": f.server.URL, "VAULT_TOKEN": "t"}))
	ren, err := p.Renew(context.Background())
	if err != nil || !ren.Next.IsZero() || len(ren.Expiring) != 0 {
		t.Errorf("Renew before Fetch: %+v, %v", ren, err)
	}
	for range 2 {
		if err := p.Close(context.Background()); err != nil {
			t.Errorf("Close before Fetch: %v", err)
		}
	}
	if len(f.requests) != 0 {
		t.Errorf("requests before any Fetch: %v", f.requests)
	}
}

// renew calls Renew and fails the test on an error.
func renew(t *testing.T, p providers.Holder) providers.Renewal {
	t.Helper()
	r, err := p.Renew(context.Background())
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	return r
}
