package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/logincache"
	"github.com/secretrun/secretrun/providers/keyring"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// needOSKeyring returns the OS keyring (gnome-keyring under scripts/test),
// or skips (fails under CI=true).
func needOSKeyring(t *testing.T) providers.Keyring {
	t.Helper()
	kr := keyring.OS{}
	err := kr.Set("secretrun-probe", "vault-cache", providers.NewSecret("probe"))
	if err == nil {
		err = kr.Delete("secretrun-probe", "vault-cache")
	}
	vaulttest.Need(t, "OS keyring", err)
	return kr
}

// since returns the requests cp saw after the first n.
func since(cp *countingProxy, n int) []string {
	return cp.requests()[n:]
}

func count(requests []string, suffix string) int {
	n := 0
	for _, r := range requests {
		if strings.HasSuffix(r, suffix) {
			n++
		}
	}
	return n
}

// cachedRun is one run of secretrun against the proxy: a new provider (as
// a new process would build), one Fetch, Close, and the requests it sent.
type cachedRun struct {
	token    string
	requests []string
	stderr   string
}

func runCached(t *testing.T, cp *countingProxy, yaml string, kr providers.Keyring, path string, now func() time.Time) cachedRun {
	t.Helper()
	before := len(cp.requests())
	e := newEnv(map[string]string{"VAULT_ADDR": cp.server.URL})
	env := e.env()
	env.Keyring = kr
	pp, err := New("test", optionsOf(t, yaml), env)
	if err != nil {
		t.Fatal(err)
	}
	p := pp.(*provider)
	if now != nil {
		p.now = now
	}
	r := fetchOne(t, p, "path: secret/"+path)
	if r.Err != nil || values(r)["DB_URL"] != "postgres://app" {
		t.Fatalf("fetch: %v", r.Err)
	}
	token := p.tok.token
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return cachedRun{token: token, requests: since(cp, before), stderr: e.stderr.String()}
}

// cachedAppRole is appRole with `cache: keyring`, and removes what the
// cache kept when the test ends.
func cachedAppRole(t *testing.T, v *vaulttest.Vault, cp *countingProxy, kr providers.Keyring, path string) (yaml, mount, secretIDFile string) {
	t.Helper()
	yaml, mount, _, _ = appRole(t, v, path)
	yaml += "  cache: keyring\n"
	secretIDFile = strings.TrimSpace(yaml[strings.Index(yaml, "secret_id_file: ")+len("secret_id_file: "):])
	secretIDFile = strings.SplitN(secretIDFile, "\n", 2)[0]
	t.Cleanup(func() {
		_, _ = logincache.Forget(kr, withKeyring(t, yaml, cp.server.URL, kr).cacheIdentity())
	})
	return yaml, mount, secretIDFile
}

// The second run takes the token the first one logged in for from the
// keyring: no login, and no revocation on either exit.
func TestLoginCacheReusesToken(t *testing.T) {
	v := needVault(t)
	kr := needOSKeyring(t)
	cp := newCountingProxy(t, v.Addr, "/v1/secret/data/")
	path := unique("cached-app")
	kvPut(t, v.Root, "secret", path, map[string]any{"DB_URL": "postgres://app"})
	yaml, mount, _ := cachedAppRole(t, v, cp, kr, path)
	login := "/v1/auth/" + mount + "/login"

	first := runCached(t, cp, yaml, kr, path, nil)
	if n := count(first.requests, login); n != 1 {
		t.Fatalf("first run: %d logins, want 1 (requests: %v)", n, first.requests)
	}
	if n := count(first.requests, "/v1/auth/token/revoke-self"); n != 0 {
		t.Errorf("first run revoked the cached token (requests: %v)", first.requests)
	}
	if tokenRevoked(v, first.token) {
		t.Fatal("the cached token does not outlive the first run")
	}

	second := runCached(t, cp, yaml, kr, path, nil)
	if second.token != first.token {
		t.Error("the second run has a token of its own, not the cached one")
	}
	if n := count(second.requests, login); n != 0 {
		t.Errorf("second run: %d logins, want none (requests: %v)", n, second.requests)
	}
	if len(second.requests) != len(first.requests)-1 {
		t.Errorf("second run sent %d requests, want one fewer than the first's %d: %v", len(second.requests), len(first.requests), second.requests)
	}
	if tokenRevoked(v, second.token) {
		t.Error("the cached token was revoked by the second run")
	}
	if first.stderr+second.stderr != "" {
		t.Errorf("warnings: %q", first.stderr+second.stderr)
	}
}

// A cached token revoked behind secretrun's back costs the next run a
// failed read and a login, and nothing the user sees.
func TestLoginCacheRevokedTokenLogsInAgain(t *testing.T) {
	v := needVault(t)
	kr := needOSKeyring(t)
	cp := newCountingProxy(t, v.Addr, "/v1/secret/data/")
	path := unique("cached-revoked")
	kvPut(t, v.Root, "secret", path, map[string]any{"DB_URL": "postgres://app"})
	yaml, mount, _ := cachedAppRole(t, v, cp, kr, path)
	login := "/v1/auth/" + mount + "/login"

	first := runCached(t, cp, yaml, kr, path, nil)
	if err := v.Root.Auth().Token().RevokeTree(first.token); err != nil {
		t.Fatal(err)
	}
	second := runCached(t, cp, yaml, kr, path, nil)
	if second.token == first.token {
		t.Fatal("the second run used the revoked token")
	}
	if n := count(second.requests, login); n != 1 {
		t.Errorf("second run: %d logins, want 1 (requests: %v)", n, second.requests)
	}
	if second.stderr != "" {
		t.Errorf("warnings: %q", second.stderr)
	}
	third := runCached(t, cp, yaml, kr, path, nil)
	if third.token != second.token || count(third.requests, login) != 0 {
		t.Errorf("the third run did not reuse the new login's token (requests: %v)", third.requests)
	}
}

// A new secret id never gets the token of the old one.
func TestLoginCacheChangedSecretIDLogsIn(t *testing.T) {
	v := needVault(t)
	kr := needOSKeyring(t)
	cp := newCountingProxy(t, v.Addr, "/v1/secret/data/")
	path := unique("cached-rotated")
	kvPut(t, v.Root, "secret", path, map[string]any{"DB_URL": "postgres://app"})
	yaml, mount, secretIDFile := cachedAppRole(t, v, cp, kr, path)
	login := "/v1/auth/" + mount + "/login"

	first := runCached(t, cp, yaml, kr, path, nil)
	sid := write(t, v.Root, "auth/"+mount+"/role/ci/secret-id", nil)
	if err := os.WriteFile(secretIDFile, []byte(sid.Data["secret_id"].(string)), 0o600); err != nil {
		t.Fatal(err)
	}
	second := runCached(t, cp, yaml, kr, path, nil)
	if second.token == first.token || count(second.requests, login) != 1 {
		t.Errorf("a new secret id reused the old login (requests: %v)", second.requests)
	}

	// A wrong secret id is refused by Vault as without the cache, though
	// a token for the right one is cached.
	if err := os.WriteFile(secretIDFile, []byte("wrong-secret-id-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := withKeyring(t, yaml, cp.server.URL, kr)
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "path: secret/"+path)})
	if !errors.Is(err, providers.ErrAuth) {
		t.Fatalf("wrong secret id: got %v, want ErrAuth", err)
	}
	mustNotContain(t, err, "wrong-secret-id-value", second.token)
}

// A token too close to its end is not reused: a run that would start on
// it might lose it before its first renewal.
func TestLoginCacheAlmostExpiredTokenLogsIn(t *testing.T) {
	v := needVault(t)
	kr := needOSKeyring(t)
	cp := newCountingProxy(t, v.Addr, "/v1/secret/data/")
	path := unique("cached-expiring")
	kvPut(t, v.Root, "secret", path, map[string]any{"DB_URL": "postgres://app"})
	yaml, mount, _ := cachedAppRole(t, v, cp, kr, path)
	login := "/v1/auth/" + mount + "/login"

	first := runCached(t, cp, yaml, kr, path, nil)
	// The token lasts 1h: 5 minutes before its end is within the margin
	// (a tenth of its TTL), 10 minutes before is not.
	later := func(d time.Duration) func() time.Time {
		return func() time.Time { return time.Now().Add(d) }
	}
	second := runCached(t, cp, yaml, kr, path, later(50*time.Minute))
	if second.token != first.token || count(second.requests, login) != 0 {
		t.Errorf("a token with 10 minutes of 1h left was not reused (requests: %v)", second.requests)
	}
	third := runCached(t, cp, yaml, kr, path, later(55*time.Minute))
	if third.token == first.token || count(third.requests, login) != 1 {
		t.Errorf("a token with 5 minutes of 1h left was reused (requests: %v)", third.requests)
	}
}

// Without `cache:`, nothing goes to the keyring and the token is revoked
// on exit, as always.
func TestLoginCacheOffKeepsNothing(t *testing.T) {
	v := needVault(t)
	cp := newCountingProxy(t, v.Addr, "/v1/secret/data/")
	path := unique("uncached")
	kvPut(t, v.Root, "secret", path, map[string]any{"DB_URL": "postgres://app"})
	yaml, mount, _, _ := appRole(t, v, path)
	kr := &recordingKeyring{Keyring: needOSKeyring(t)}

	run := runCached(t, cp, yaml, kr, path, nil)
	if kr.writes != 0 || kr.reads != 0 {
		t.Errorf("the keyring was used %d times for reading, %d for writing", kr.reads, kr.writes)
	}
	if !tokenRevoked(v, run.token) {
		t.Error("the login token outlived the run")
	}
	if count(run.requests, "/v1/auth/"+mount+"/login") != 1 || count(run.requests, "/v1/auth/token/revoke-self") != 1 {
		t.Errorf("requests: %v, want one login and one revocation", run.requests)
	}
}

// recordingKeyring counts what goes through it.
type recordingKeyring struct {
	providers.Keyring
	reads, writes int
}

func (k *recordingKeyring) Get(service, key string) (providers.Secret, error) {
	k.reads++
	return k.Keyring.Get(service, key)
}

func (k *recordingKeyring) Set(service, key string, value providers.Secret) error {
	k.writes++
	return k.Keyring.Set(service, key, value)
}

// The keyring item holds the token and never the credential it was
// obtained with; `secretrun logout` removes and revokes it.
func TestLoginCacheItemAndLogout(t *testing.T) {
	v := needVault(t)
	kr := needOSKeyring(t)
	cp := newCountingProxy(t, v.Addr, "/v1/secret/data/")
	path := unique("cached-logout")
	kvPut(t, v.Root, "secret", path, map[string]any{"DB_URL": "postgres://app"})
	yaml, _, secretIDFile := cachedAppRole(t, v, cp, kr, path)
	secretID, err := os.ReadFile(secretIDFile)
	if err != nil {
		t.Fatal(err)
	}

	mem := &capturingKeyring{Keyring: kr}
	run := runCached(t, cp, yaml, mem, path, nil)
	if len(mem.values) != 1 {
		t.Fatalf("%d keyring writes, want 1", len(mem.values))
	}
	if stored := mem.values[0]; !strings.Contains(stored, run.token) || strings.Contains(stored, strings.TrimSpace(string(secretID))) {
		t.Error("the keyring item lacks the token or holds the secret id")
	}

	p := withKeyring(t, yaml, cp.server.URL, kr)
	if err := p.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !tokenRevoked(v, run.token) {
		t.Error("logout left the cached token valid")
	}
	if err := p.Logout(context.Background()); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("second logout: got %v, want not found", err)
	}
}

// capturingKeyring keeps what is written, to look inside.
type capturingKeyring struct {
	providers.Keyring
	values []string
}

func (k *capturingKeyring) Set(service, key string, value providers.Secret) error {
	k.values = append(k.values, value.Reveal())
	return k.Keyring.Set(service, key, value)
}

func TestLoginCacheSetting(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"auth: {method: approle, role_id: r, cache: keyrin}", `cache "keyrin" is not keyring or none`},
		{"auth: {method: token, cache: keyring}", "cache applies to methods approle, jwt and kubernetes"},
		{"auth: {method: userpass, cache: keyring}", "cache applies to methods approle, jwt and kubernetes"},
		{"auth: {method: approle, role_id: r, cache: none}", ""},
		{"auth: {method: jwt, role: r, cache: keyring}", ""},
	} {
		_, err := New("test", optionsOf(t, tc.yaml), newEnv(nil).env())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.yaml, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func optionsOf(t *testing.T, yaml string) providers.Options {
	t.Helper()
	opts, err := config.OptionsFromYAML(yaml)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// withKeyring is a provider like newProvider's, with kr for its keyring.
func withKeyring(t *testing.T, yaml, addr string, kr providers.Keyring) *provider {
	t.Helper()
	env := newEnv(map[string]string{"VAULT_ADDR": addr}).env()
	env.Keyring = kr
	p, err := New("test", optionsOf(t, yaml), env)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*provider)
}

// BenchmarkLoginCache prices a run's start and exit (a new provider, one
// KV v2 read, Close, as before an exec) with and without a cached token,
// on loopback and with 20 ms added to every request's round trip, and
// reports the requests and the sequential round trips of each run.
func BenchmarkLoginCache(b *testing.B) {
	if serverErr != nil {
		b.Skip(serverErr)
	}
	v := server
	kr := keyring.OS{}
	if err := kr.Set("secretrun-probe", "vault-bench", providers.NewSecret("probe")); err != nil {
		b.Skip("no OS keyring: ", err)
	}
	_ = kr.Delete("secretrun-probe", "vault-bench")
	path := unique("bench-cache")
	if _, err := v.Root.KVv2("secret").Put(context.Background(), path, map[string]any{"DB_URL": "postgres://app"}); err != nil {
		b.Fatal(err)
	}
	mount := unique("approle")
	must := func(_ any, err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(nil, v.Root.Sys().EnableAuthWithOptions(mount, &api.EnableAuthOptions{Type: "approle"}))
	must(nil, v.Root.Sys().PutPolicy(mount, fmt.Sprintf(`path "secret/data/%s" { capabilities = ["read"] }`, path)))
	must(v.Root.Logical().Write("auth/"+mount+"/role/ci", map[string]any{"token_policies": mount, "token_ttl": "1h"}))
	role, err := v.Root.Logical().Read("auth/" + mount + "/role/ci/role-id")
	must(role, err)
	sid, err := v.Root.Logical().Write("auth/"+mount+"/role/ci/secret-id", nil)
	must(sid, err)
	yaml := fmt.Sprintf("auth:\n  method: approle\n  mount: %s\n  role_id: %s\n  secret_id: %s\n", mount, role.Data["role_id"], sid.Data["secret_id"])

	for _, rtt := range []time.Duration{0, 20 * time.Millisecond} {
		sp := newSlowProxy(b, v.Addr, rtt)
		for _, cache := range []string{"none", "keyring"} {
			conf := yaml + "  cache: " + cache + "\n"
			b.Run(fmt.Sprintf("rtt=%s/cache=%s", rtt, cache), func(b *testing.B) {
				benchRun(b, conf, sp.url, kr, path) // fills the cache
				sp.reset()
				for b.Loop() {
					benchRun(b, conf, sp.url, kr, path)
				}
				requests, sequential := sp.counts()
				b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
				b.ReportMetric(float64(sequential)/float64(b.N), "sequential/op")
			})
		}
	}
	p, err := New("bench", mustOptions(b, yaml+"  cache: keyring\n"), providers.Env{Getenv: func(string) string { return "" }})
	if err == nil {
		_, _ = logincache.Forget(kr, p.(*provider).cacheIdentity())
	}
}

func mustOptions(b *testing.B, yaml string) providers.Options {
	opts, err := config.OptionsFromYAML(yaml)
	if err != nil {
		b.Fatal(err)
	}
	return opts
}

func benchRun(b *testing.B, yaml, addr string, kr providers.Keyring, path string) {
	env := providers.Env{Getenv: func(k string) string {
		if k == "VAULT_ADDR" {
			return addr
		}
		return ""
	}, Keyring: kr}
	pp, err := New("bench", mustOptions(b, yaml), env)
	if err != nil {
		b.Fatal(err)
	}
	src, err := config.SourceFromYAML(pp, "bench", "path: secret/"+path)
	if err != nil {
		b.Fatal(err)
	}
	res, err := pp.Fetch(context.Background(), []*providers.Source{src})
	if err != nil || res[0].Err != nil {
		b.Fatal(err, res[0].Err)
	}
	if err := pp.(*provider).Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// slowProxy forwards to Vault after waiting rtt, as a distant server would
// answer, and counts requests and sequential round trips: a request that
// starts while another is in flight shares its round trip.
type slowProxy struct {
	url                  string
	mu                   sync.Mutex
	inFlight             int
	requests, sequential int
}

func newSlowProxy(b *testing.B, target string, rtt time.Duration) *slowProxy {
	u, err := url.Parse(target)
	if err != nil {
		b.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	sp := &slowProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sp.mu.Lock()
		sp.requests++
		if sp.inFlight == 0 {
			sp.sequential++
		}
		sp.inFlight++
		sp.mu.Unlock()
		time.Sleep(rtt)
		rp.ServeHTTP(w, r)
		sp.mu.Lock()
		sp.inFlight--
		sp.mu.Unlock()
	}))
	b.Cleanup(srv.Close)
	sp.url = srv.URL
	return sp
}

func (sp *slowProxy) reset() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.requests, sp.sequential = 0, 0
}

func (sp *slowProxy) counts() (requests, sequential int) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.requests, sp.sequential
}
