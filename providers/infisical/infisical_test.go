package infisical

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
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
	"github.com/secretrun/secretrun/providers/infisical/infisicaltest"
	"github.com/secretrun/secretrun/providers/providertest"
)

const (
	projectID    = "0f6b3c6e-7d4a-4c1e-9b2f-5a8e6d3c1b0a"
	projectSlug  = "shop"
	clientID     = "4f1c2b9e-ci"
	clientSecret = "cs-9d8e7f6a5b4c3d2e1f0a"
)

// backend is a test server with one project (environments dev, staging and
// prod) and one machine identity that may read it.
type backend struct {
	*infisicaltest.Server
	identity *infisicaltest.Identity
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	srv := infisicaltest.New(t)
	srv.AddProject(projectID, projectSlug, "dev", "staging", "prod")
	id := srv.AddIdentity(clientID, clientSecret, projectID)
	return &backend{Server: srv, identity: id}
}

// machineEnv is the environment of a CI job with a machine identity.
var machineEnv = map[string]string{"INFISICAL_CLIENT_ID": clientID, "INFISICAL_CLIENT_SECRET": clientSecret}

type fixture struct {
	env     map[string]string
	keyring *providertest.Keyring
	stderr  *syncBuffer
}

type option func(*fixture)

func withEnv(env map[string]string) option { return func(f *fixture) { f.env = env } }

func withKeyring(k *providertest.Keyring) option { return func(f *fixture) { f.keyring = k } }

// newProvider builds an instance named "infisical" from settings (YAML) for
// the backend at site; extra settings follow site_url and project_id.
func newProvider(t *testing.T, site, extra string, opts ...option) *provider {
	t.Helper()
	f := &fixture{env: machineEnv, keyring: providertest.NewKeyring(), stderr: &syncBuffer{}}
	for _, o := range opts {
		o(f)
	}
	yaml := fmt.Sprintf("site_url: %s\n", site)
	if !strings.Contains(extra, "project_") {
		yaml += "project_id: " + projectID + "\n"
	}
	o, err := config.OptionsFromYAML(yaml + extra)
	if err != nil {
		t.Fatal(err)
	}
	env := providers.Env{
		Getenv:  func(k string) string { return f.env[k] },
		Keyring: f.keyring,
		Stderr:  f.stderr,
	}
	pr, err := New("infisical", o, env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	p := pr.(*provider)
	p.retry = retryPolicy{attempts: 4, base: time.Millisecond, max: 4 * time.Millisecond}
	p.callTimeout = 10 * time.Second
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func source(t *testing.T, p providers.Provider, yaml string) *providers.Source {
	t.Helper()
	src, err := config.SourceFromYAML(p, "infisical", yaml)
	if err != nil {
		t.Fatalf("source %q: %v", yaml, err)
	}
	return src
}

func fetch(t *testing.T, p providers.Provider, yamls ...string) []providers.Result {
	t.Helper()
	var srcs []*providers.Source
	for _, y := range yamls {
		srcs = append(srcs, source(t, p, y))
	}
	results, err := p.Fetch(context.Background(), srcs)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return results
}

func fetchFields(t *testing.T, p providers.Provider, yaml string) map[string]string {
	t.Helper()
	r := fetch(t, p, yaml)[0]
	if r.Err != nil {
		t.Fatalf("Fetch %q: %v", yaml, r.Err)
	}
	return reveal(r.Fields)
}

func reveal(fields map[string]providers.Field) map[string]string {
	out := map[string]string{}
	for k, f := range fields {
		out[k] = f.Value.Reveal()
	}
	return out
}

func assertFields(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d fields %v, want %d", len(got), keys(got), len(want))
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("field %s missing (got %v)", k, keys(got))
		}
		if g != v {
			t.Errorf("field %s: got %q, want %q", k, g, v)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// assertError checks that err wraps sentinel, names every part of where,
// and shows none of the secret values.
func assertError(t *testing.T, err, sentinel error, where []string, values ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one wrapping %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %v", err, sentinel)
	}
	for _, w := range where {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %q", err, w)
		}
	}
	for _, v := range values {
		if strings.Contains(err.Error(), v) {
			t.Errorf("error %q shows a secret value", err)
		}
	}
	if !strings.HasPrefix(err.Error(), `infisical "infisical": `) {
		t.Errorf("error %q does not start with the provider instance", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds, failing after a generous deadline: the
// SDK renews tokens on its own schedule.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConformance(t *testing.T) {
	b := newBackend(t)
	p := newProvider(t, b.URL, "")
	var mu sync.Mutex
	stored := map[string][]string{}
	providertest.Run(t, providertest.Backend{
		Provider: p,
		Name:     "infisical",
		Put: func(t *testing.T, name string, fields map[string]string) string {
			mu.Lock()
			defer mu.Unlock()
			path := "/conformance/" + name
			for _, k := range stored[name] {
				if _, keep := fields[k]; !keep {
					b.DeleteSecret(projectID, "dev", path, k)
				}
			}
			stored[name] = nil
			for k, v := range fields {
				b.SetSecret(projectID, "dev", path, k, v)
				stored[name] = append(stored[name], k)
			}
			return "environment: dev\npath: " + path
		},
		Missing: func(t *testing.T) string { return "environment: dev\npath: /conformance/does-not-exist" },
	})
}

func TestConstructionDoesNotContactTheBackend(t *testing.T) {
	b := newBackend(t)
	p := newProvider(t, b.URL, "")
	source(t, p, "environment: dev\npath: /api")
	if n := b.Stats().Requests; n != 0 {
		t.Fatalf("building the provider and parsing a source made %d requests", n)
	}
}

func TestUniversalAuthLogsInOncePerRun(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "dev", "/", "DATABASE_URL", "postgres://u:p@db/app")
	p := newProvider(t, b.URL, "")
	for range 3 {
		assertFields(t, fetchFields(t, p, "environment: dev"), map[string]string{"DATABASE_URL": "postgres://u:p@db/app"})
	}
	if _, err := p.Versions(context.Background(), []*providers.Source{source(t, p, "environment: dev")}); err != nil {
		t.Fatal(err)
	}
	if n := b.Count(infisicaltest.Login); n != 1 {
		t.Errorf("%d logins for one run, want 1", n)
	}
}

func TestInfisicalSDKVariableNamesWork(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "dev", "/", "K", "v")
	p := newProvider(t, b.URL, "", withEnv(map[string]string{
		"INFISICAL_UNIVERSAL_AUTH_CLIENT_ID": clientID, "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET": clientSecret,
	}))
	assertFields(t, fetchFields(t, p, "environment: dev"), map[string]string{"K": "v"})
}

func TestAccessToken(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "API_KEY", "k-123")
	token := b.IssueToken(clientID)
	p := newProvider(t, b.URL, "", withEnv(map[string]string{"INFISICAL_TOKEN": token, "INFISICAL_CLIENT_ID": "ignored", "INFISICAL_CLIENT_SECRET": "ignored"}))
	assertFields(t, fetchFields(t, p, "environment: prod"), map[string]string{"API_KEY": "k-123"})
	if n := b.Count(infisicaltest.Login); n != 0 {
		t.Errorf("an access token led to %d logins", n)
	}

	// A static token cannot be renewed: once it expires, the failure is
	// the whole fetch's, and says where the token came from.
	b.ExpireTokens()
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "environment: prod")})
	assertError(t, err, providers.ErrAuth, []string{b.URL, projectID, "prod"}, "k-123", token)
}

func TestKubernetesAuth(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "K", "from-k8s")
	b.AddKubernetesIdentity("k8s-identity-1", "eyJhbGciOiJSUzI1NiJ9.payload.sig", projectID)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("eyJhbGciOiJSUzI1NiJ9.payload.sig\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, b.URL, "auth:\n  method: kubernetes\n  identity_id: k8s-identity-1\n  service_account_token_file: "+tokenFile+"\n",
		withEnv(nil))
	assertFields(t, fetchFields(t, p, "environment: prod"), map[string]string{"K": "from-k8s"})
	if n := b.Count(infisicaltest.KubernetesAuth); n != 1 {
		t.Errorf("%d kubernetes logins, want 1", n)
	}

	// The kubelet rotated the token and the access token expired: the new
	// login presents the token on disk now.
	b.AddKubernetesIdentity("k8s-identity-1", "eyJhbGciOiJSUzI1NiJ9.rotated.sig", projectID)
	if err := os.WriteFile(tokenFile, []byte("eyJhbGciOiJSUzI1NiJ9.rotated.sig"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.ExpireTokens()
	assertFields(t, fetchFields(t, p, "environment: prod"), map[string]string{"K": "from-k8s"})
	if n := b.Count(infisicaltest.KubernetesAuth); n != 2 {
		t.Errorf("%d kubernetes logins, want 2", n)
	}

	wrong := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(wrong, []byte("not-the-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	p = newProvider(t, b.URL, "auth:\n  method: kubernetes\n  identity_id: k8s-identity-1\n  service_account_token_file: "+wrong+"\n", withEnv(nil))
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "environment: prod")})
	assertError(t, err, providers.ErrAuth, []string{b.URL, "k8s-identity-1"}, "not-the-token")
}

// prompter answers as a user at a terminal would.
type prompter struct {
	id, secret string
	asked      []string
}

func (p *prompter) Ask(label string) (string, error) {
	p.asked = append(p.asked, label)
	return p.id, nil
}

func (p *prompter) AskSecret(label string) (providers.Secret, error) {
	p.asked = append(p.asked, label)
	return providers.NewSecret(p.secret), nil
}

func TestLoginStoresVerifiedCredentialsInTheKeyring(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "dev", "/", "K", "v")
	kr := providertest.NewKeyring()
	p := newProvider(t, b.URL+"/", "", withEnv(nil), withKeyring(kr))

	// Without credentials, the message says how to get some.
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "environment: dev")})
	assertError(t, err, providers.ErrAuth, []string{"secretrun login infisical", "INFISICAL_CLIENT_ID"})

	wrong := &prompter{id: clientID, secret: "wrong-secret"}
	err = p.Login(context.Background(), wrong)
	assertError(t, err, providers.ErrAuth, []string{b.URL, clientID}, "wrong-secret")
	if _, err := kr.Get(KeyringService, b.URL); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("credentials refused by the server were stored (%v)", err)
	}

	if err := p.Login(context.Background(), &prompter{id: clientID, secret: clientSecret}); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if _, err := kr.Get(KeyringService, b.URL); err != nil {
		t.Fatalf("no keyring item for the site URL: %v", err)
	}
	assertFields(t, fetchFields(t, p, "environment: dev"), map[string]string{"K": "v"})

	// Another instance on the same site finds them too.
	other := newProvider(t, b.URL, "", withEnv(nil), withKeyring(kr))
	assertFields(t, fetchFields(t, other, "environment: dev"), map[string]string{"K": "v"})

	if err := p.Logout(context.Background()); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if _, err := kr.Get(KeyringService, b.URL); !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("Logout left the keyring item (%v)", err)
	}
	if err := p.Logout(context.Background()); !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("a second Logout: %v, want ErrNotFound", err)
	}
	_, err = p.Fetch(context.Background(), []*providers.Source{source(t, p, "environment: dev")})
	assertError(t, err, providers.ErrAuth, nil)
}

func TestNestedPathsAndRecursion(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "ROOT", "r")
	b.SetSecret(projectID, "prod", "/billing", "STRIPE_KEY", "sk_live")
	b.SetSecret(projectID, "prod", "/billing/worker", "QUEUE_URL", "amqp://q")
	b.SetSecret(projectID, "prod", "/billing/worker/deep", "DEEP", "d")
	b.SetSecret(projectID, "prod", "/billingsystem", "OTHER", "o")
	p := newProvider(t, b.URL, "")

	assertFields(t, fetchFields(t, p, "environment: prod\npath: /billing/worker/"), map[string]string{"QUEUE_URL": "amqp://q"})
	assertFields(t, fetchFields(t, p, "environment: prod\npath: /billing"), map[string]string{"STRIPE_KEY": "sk_live"})
	assertFields(t, fetchFields(t, p, "environment: prod\npath: /billing\nrecursive: true"),
		map[string]string{"STRIPE_KEY": "sk_live", "QUEUE_URL": "amqp://q", "DEEP": "d"})
	assertFields(t, fetchFields(t, p, "environment: prod\nrecursive: true"),
		map[string]string{"ROOT": "r", "STRIPE_KEY": "sk_live", "QUEUE_URL": "amqp://q", "DEEP": "d", "OTHER": "o"})
}

func TestImports(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/shared", "SENTRY_DSN", "https://sentry")
	b.SetSecret(projectID, "prod", "/shared", "LOG_LEVEL", "warn")
	b.SetSecret(projectID, "staging", "/", "FEATURE_FLAGS_KEY", "ff")
	b.SetSecret(projectID, "prod", "/api", "LOG_LEVEL", "debug")
	b.AddImport(projectID, "prod", "/api", "prod", "/shared")
	b.AddImport(projectID, "prod", "/api", "staging", "/")
	p := newProvider(t, b.URL, "")

	// The folder's own secret wins over an imported one of the same name.
	assertFields(t, fetchFields(t, p, "environment: prod\npath: /api"),
		map[string]string{"LOG_LEVEL": "debug", "SENTRY_DSN": "https://sentry", "FEATURE_FLAGS_KEY": "ff"})
	assertFields(t, fetchFields(t, p, "environment: prod\npath: /api\ninclude_imports: false"),
		map[string]string{"LOG_LEVEL": "debug"})

	// A folder holding only imports is not empty.
	b.AddFolder(projectID, "prod", "/web")
	b.AddImport(projectID, "prod", "/web", "prod", "/shared")
	assertFields(t, fetchFields(t, p, "environment: prod\npath: /web"),
		map[string]string{"LOG_LEVEL": "warn", "SENTRY_DSN": "https://sentry"})
	r := fetch(t, p, "environment: prod\npath: /web\ninclude_imports: false")[0]
	assertError(t, r.Err, providers.ErrNotFound, []string{"/web", "holds no secrets"})
}

func TestReferenceExpansion(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/db", "PASSWORD", "pa$$")
	b.SetSecret(projectID, "prod", "/db", "HOST", "db.internal")
	b.SetSecret(projectID, "prod", "/", "REGION", "eu-west-1")
	b.SetSecret(projectID, "prod", "/api", "USER", "app")
	b.SetSecret(projectID, "prod", "/api", "DATABASE_URL", "postgres://${USER}:${prod.db.PASSWORD}@${prod.db.HOST}/app?region=${prod.REGION}")
	b.SetSecret(projectID, "prod", "/api", "DANGLING", "x-${NOPE}-${prod.nowhere.KEY}")
	b.SetSecret(projectID, "prod", "/api", "CHAIN", "${DATABASE_URL}")
	b.SetSecret(projectID, "prod", "/api", "LOOP_A", "a${LOOP_B}")
	b.SetSecret(projectID, "prod", "/api", "LOOP_B", "b${LOOP_A}")
	p := newProvider(t, b.URL, "")

	got := fetchFields(t, p, "environment: prod\npath: /api")
	want := "postgres://app:pa$$@db.internal/app?region=eu-west-1"
	if got["DATABASE_URL"] != want {
		t.Errorf("DATABASE_URL: got %q, want %q", got["DATABASE_URL"], want)
	}
	if got["CHAIN"] != want {
		t.Errorf("CHAIN (a reference to a reference): got %q, want %q", got["CHAIN"], want)
	}
	if got["DANGLING"] != "x-${NOPE}-${prod.nowhere.KEY}" {
		t.Errorf("references to missing secrets must stay as written, got %q", got["DANGLING"])
	}
	if !strings.HasPrefix(got["LOOP_A"], "ab") {
		t.Errorf("LOOP_A: got %q", got["LOOP_A"])
	}

	raw := fetchFields(t, p, "environment: prod\npath: /api\nexpand_references: false")
	if raw["DATABASE_URL"] != "postgres://${USER}:${prod.db.PASSWORD}@${prod.db.HOST}/app?region=${prod.REGION}" {
		t.Errorf("expand_references: false expanded: %q", raw["DATABASE_URL"])
	}
}

func TestTags(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "STRIPE_KEY", "sk", "payments", "backend")
	b.SetSecret(projectID, "prod", "/", "PAYPAL_KEY", "pp", "payments")
	b.SetSecret(projectID, "prod", "/", "SMTP_PASSWORD", "smtp", "email")
	b.SetSecret(projectID, "prod", "/", "UNTAGGED", "u")
	p := newProvider(t, b.URL, "")

	assertFields(t, fetchFields(t, p, "environment: prod\ntags: [payments]"), map[string]string{"STRIPE_KEY": "sk", "PAYPAL_KEY": "pp"})
	assertFields(t, fetchFields(t, p, "environment: prod\ntags: [email, backend]"), map[string]string{"STRIPE_KEY": "sk", "SMTP_PASSWORD": "smtp"})
	r := fetch(t, p, "environment: prod\ntags: [nothing-has-this]")[0]
	assertError(t, r.Err, providers.ErrNotFound, []string{"nothing-has-this", "prod"}, "sk", "pp", "smtp")
}

func TestOneSecretAndPinnedVersion(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/db", "PASSWORD", "first")
	b.SetSecret(projectID, "prod", "/db", "PASSWORD", "second")
	b.SetSecret(projectID, "prod", "/db", "USER", "app")
	p := newProvider(t, b.URL, "")

	assertFields(t, fetchFields(t, p, "environment: prod\npath: /db\nsecret: PASSWORD"), map[string]string{"PASSWORD": "second"})
	assertFields(t, fetchFields(t, p, "environment: prod\npath: /db\nsecret: PASSWORD\nas: PGPASSWORD"), map[string]string{providers.Plain: "second"})
	r := fetch(t, p, "environment: prod\npath: /db\nsecret: PASSWORD\nversion: 1")[0]
	if r.Err != nil || r.Fields["PASSWORD"].Value.Reveal() != "first" || r.Version != "1" {
		t.Fatalf("version 1: err %v, version %q, fields %v", r.Err, r.Version, keys(reveal(r.Fields)))
	}

	r = fetch(t, p, "environment: prod\npath: /db\nsecret: NOPE")[0]
	assertError(t, r.Err, providers.ErrNotFound, []string{"/db/NOPE", "prod", b.URL, projectID})
	r = fetch(t, p, "environment: prod\npath: /db\nsecret: PASSWORD\nversion: 9")[0]
	assertError(t, r.Err, providers.ErrNotFound, []string{"version 9", "/db/PASSWORD"})
}

func TestSourcesOfOneFolderShareOneRequest(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "A", "a")
	b.SetSecret(projectID, "prod", "/", "B", "b")
	p := newProvider(t, b.URL, "")
	results := fetch(t, p, "environment: prod\nkeys: [A]", "environment: prod\nkeys: [B]", "environment: prod\nprefix: X_")
	for i, r := range results {
		if r.Err != nil || len(r.Fields) != 2 {
			t.Fatalf("source %d: %v %v", i, r.Err, keys(reveal(r.Fields)))
		}
	}
	if n := b.Count(infisicaltest.List); n != 1 {
		t.Errorf("three sources of one folder made %d list requests, want 1", n)
	}
}

func TestBadCredentials(t *testing.T) {
	b := newBackend(t)
	p := newProvider(t, b.URL, "", withEnv(map[string]string{"INFISICAL_CLIENT_ID": clientID, "INFISICAL_CLIENT_SECRET": "not-the-secret"}))
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "environment: prod")})
	assertError(t, err, providers.ErrAuth, []string{b.URL, clientID, "INFISICAL_CLIENT_ID", "Invalid credentials"}, "not-the-secret")

	p = newProvider(t, b.URL, "", withEnv(map[string]string{"INFISICAL_CLIENT_ID": clientID}))
	_, err = p.Fetch(context.Background(), []*providers.Source{source(t, p, "environment: prod")})
	assertError(t, err, providers.ErrAuth, []string{"INFISICAL_CLIENT_SECRET is not"})
}

func TestUnknownProject(t *testing.T) {
	b := newBackend(t)
	b.AddProject("11111111-2222-4333-8444-555555555555", "other", "prod") // exists, but the identity is no member
	p := newProvider(t, b.URL, "project_id: 11111111-2222-4333-8444-555555555555\n")
	r := fetch(t, p, "environment: prod\npath: /api")[0]
	assertError(t, r.Err, providers.ErrDenied, []string{b.URL, "11111111-2222-4333-8444-555555555555", "prod", "/api", "403"})

	p = newProvider(t, b.URL, "project_slug: no-such-project\n")
	r = fetch(t, p, "environment: prod")[0]
	assertError(t, r.Err, providers.ErrNotFound, []string{"no-such-project", "prod"})
}

func TestProjectSlug(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "K", "v")
	p := newProvider(t, b.URL, "project_slug: "+projectSlug+"\n")
	assertFields(t, fetchFields(t, p, "environment: prod"), map[string]string{"K": "v"})
	r := fetch(t, p, "environment: prod\npath: /missing")[0]
	assertError(t, r.Err, providers.ErrNotFound, []string{"/missing", "project slug " + projectSlug})
}

func TestUnknownEnvironmentAndMissingPath(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/api", "K", "value-not-to-show")
	b.AddFolder(projectID, "prod", "/empty")
	p := newProvider(t, b.URL, "")
	results := fetch(t, p,
		"environment: production\npath: /api",
		"environment: production\npath: /api\nrecursive: true",
		"environment: prod\npath: /api/nope",
		"environment: prod\npath: /empty",
		"environment: prod\npath: /api",
	)
	where := []string{b.URL, projectID}
	assertError(t, results[0].Err, providers.ErrNotFound, append(where, `environment "production" does not exist`, "/api"))
	assertError(t, results[1].Err, providers.ErrNotFound, append(where, "production", "/api"))
	assertError(t, results[2].Err, providers.ErrNotFound, append(where, "folder /api/nope does not exist", "env prod"), "value-not-to-show")
	assertError(t, results[3].Err, providers.ErrNotFound, append(where, "/empty", "holds no secrets"))
	if results[4].Err != nil {
		t.Errorf("a good source failed beside bad ones: %v", results[4].Err)
	}
}

func TestRateLimitIsRetried(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "K", "v")
	p := newProvider(t, b.URL, "")
	b.RateLimit(2)
	assertFields(t, fetchFields(t, p, "environment: prod"), map[string]string{"K": "v"})
	if n := b.Stats().RateLimited; n != 2 {
		t.Fatalf("%d requests were rate limited, want 2", n)
	}

	b.RateLimit(100)
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "environment: prod")})
	assertError(t, err, providers.ErrUnavailable, []string{"rate limited", "429", b.URL, "prod"})
}

func TestUnreachableServer(t *testing.T) {
	site := "http://" + providertest.Addr(providertest.FreePort(t))
	p := newProvider(t, site, "")
	start := time.Now()
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "environment: prod")})
	assertError(t, err, providers.ErrUnavailable, []string{site, "connection refused"}, clientSecret)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("giving up took %v", d)
	}
}

func TestTokenRenewalDuringALongRun(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "K", "v1")
	// Tokens live 6 s, the SDK renews them 5 s before expiry: about once a
	// second. The max TTL leaves room for several renewals.
	b.SetTokenTTL(b.identity, 6*time.Second, time.Hour)
	p := newProvider(t, b.URL, "")
	assertFields(t, fetchFields(t, p, "environment: prod"), map[string]string{"K": "v1"})
	if !strings.Contains(p.env.Stderr.(*syncBuffer).String(), "live only 6s") {
		t.Errorf("no warning about the short token TTL: %q", p.env.Stderr.(*syncBuffer).String())
	}
	waitFor(t, "two token renewals", func() bool { return b.Count(infisicaltest.Renew) >= 2 })
	b.SetSecret(projectID, "prod", "/", "K", "v2")
	assertFields(t, fetchFields(t, p, "environment: prod"), map[string]string{"K": "v2"})
	if n := b.Count(infisicaltest.Login); n != 1 {
		t.Errorf("%d logins; renewal should have kept the first token alive", n)
	}
}

func TestTokenAtItsMaxTTLIsReplacedByALogin(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "K", "v")
	// Tokens live 6 s and at most 7 s, and are due for renewal 5 s before
	// expiry: a renewal then would extend the token to just past its max
	// TTL, which Infisical refuses, so a new login must replace it.
	b.SetTokenTTL(b.identity, 6*time.Second, 7*time.Second)
	p := newProvider(t, b.URL, "")
	src := source(t, p, "environment: prod")
	deadline := time.Now().Add(15 * time.Second)
	for b.Count(infisicaltest.Login) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for logins past the max TTL: %v", b.Counts())
		}
		if _, err := p.Versions(context.Background(), []*providers.Source{src}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := b.Stats().TokenRefusals; n != 0 {
		t.Errorf("%d requests or renewals were refused for their token (%v); the token should have been replaced before its max TTL", n, b.Counts())
	}
}

func TestExpiredTokenLogsInAgain(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/a", "A", "a")
	b.SetSecret(projectID, "prod", "/b", "B", "b")
	p := newProvider(t, b.URL, "")
	fetch(t, p, "environment: prod\npath: /a")
	b.ExpireTokens()
	// Two requests fail with the expired token at once; one new login serves both.
	results := fetch(t, p, "environment: prod\npath: /a", "environment: prod\npath: /b")
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("source %d after expiry: %v", i, r.Err)
		}
	}
	if n := b.Count(infisicaltest.Login); n != 2 {
		t.Errorf("%d logins, want 2 (the first and one after expiry)", n)
	}

	// Revoked identity credentials: the new login fails, and says so.
	b.RevokeTokens()
	b.AddIdentity(clientID, "rotated-secret", projectID)
	_, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, "environment: prod\npath: /a")})
	assertError(t, err, providers.ErrAuth, []string{b.URL, clientID, "log in"})
}

func TestVersionsCostA304WhenNothingChanged(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/api", "K", "v1")
	b.SetSecret(projectID, "prod", "/db", "PASSWORD", "p1")
	b.SetSecret(projectID, "prod", "/db", "USER", "u1")
	p := newProvider(t, b.URL, "")
	srcs := []*providers.Source{
		source(t, p, "environment: prod\npath: /api"),
		source(t, p, "environment: prod\npath: /db\nsecret: PASSWORD"),
		source(t, p, "environment: prod\npath: /db\nsecret: USER\nversion: 1"),
	}
	if _, err := p.Fetch(context.Background(), srcs); err != nil {
		t.Fatal(err)
	}
	first, err := p.Versions(context.Background(), srcs)
	if err != nil {
		t.Fatal(err)
	}
	if first[0] == "" || first[1] == "" || first[2] == "" {
		t.Fatalf("empty labels: %q", first)
	}

	before := b.Stats()
	again, err := p.Versions(context.Background(), srcs)
	if err != nil {
		t.Fatal(err)
	}
	after := b.Stats()
	if fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("labels changed without a write: %q then %q", first, again)
	}
	if n := after.ListNotModified - before.ListNotModified; n != 2 {
		t.Errorf("%d polls answered 304, want 2 (one per folder; the pinned version needs none)", n)
	}
	if n := after.ListBodyBytes - before.ListBodyBytes; n != 0 {
		t.Errorf("unchanged polls carried %d bytes of payload, want 0", n)
	}
	if n := after.Requests - before.Requests; n != 2 {
		t.Errorf("a poll made %d requests, want 2", n)
	}

	b.SetSecret(projectID, "prod", "/db", "PASSWORD", "p2")
	changed, err := p.Versions(context.Background(), srcs)
	if err != nil {
		t.Fatal(err)
	}
	if changed[0] != first[0] {
		t.Errorf("/api label changed though only /db did")
	}
	if changed[1] == first[1] {
		t.Errorf("/db/PASSWORD label did not change after a write")
	}
	if changed[2] != first[2] {
		t.Errorf("a pinned version's label changed")
	}

	// A change to a referenced secret elsewhere changes the listing, so the
	// label too.
	b.SetSecret(projectID, "prod", "/api", "URL", "${prod.db.PASSWORD}")
	p.Versions(context.Background(), srcs)
	base, _ := p.Versions(context.Background(), srcs)
	b.SetSecret(projectID, "prod", "/db", "PASSWORD", "p3")
	now, _ := p.Versions(context.Background(), srcs)
	if now[0] == base[0] {
		t.Errorf("/api label did not change when a secret it references did")
	}
}

func TestRequestCounts(t *testing.T) {
	t.Run("20 secrets in one path", func(t *testing.T) {
		b := newBackend(t)
		for i := range 20 {
			b.SetSecret(projectID, "prod", "/api", fmt.Sprintf("SECRET_%02d", i), fmt.Sprintf("value-%02d", i))
		}
		p := newProvider(t, b.URL, "")
		if got := fetchFields(t, p, "environment: prod\npath: /api"); len(got) != 20 {
			t.Fatalf("got %d secrets", len(got))
		}
		t.Logf("requests: %d total, by endpoint %v", b.Stats().Requests, b.Counts())
		if n := b.Stats().Requests; n != 2 {
			t.Errorf("%d requests, want 2 (login, list)", n)
		}
	})
	t.Run("5 paths", func(t *testing.T) {
		b := newBackend(t)
		var yamls []string
		for i := range 5 {
			path := fmt.Sprintf("/service-%d", i)
			b.SetSecret(projectID, "prod", path, fmt.Sprintf("KEY_%d", i), "v")
			yamls = append(yamls, "environment: prod\npath: "+path)
		}
		p := newProvider(t, b.URL, "")
		for i, r := range fetch(t, p, yamls...) {
			if r.Err != nil {
				t.Fatalf("source %d: %v", i, r.Err)
			}
		}
		t.Logf("requests: %d total, by endpoint %v", b.Stats().Requests, b.Counts())
		if n := b.Stats().Requests; n != 6 {
			t.Errorf("%d requests, want 6 (login, 5 lists)", n)
		}
	})
}

// TestOneConnectionFromLoginToPolls checks that the login, the fetch and the
// watch polls after it share one kept-alive connection: behind latency every
// new connection costs a TCP round trip, and over TLS a handshake too.
func TestOneConnectionFromLoginToPolls(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/api", "K", "v")
	run := func(t *testing.T, p *provider) {
		t.Helper()
		src := source(t, p, "environment: prod\npath: /api")
		if _, err := p.Fetch(context.Background(), []*providers.Source{src}); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := p.Versions(context.Background(), []*providers.Source{src}); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("http", func(t *testing.T) {
		run(t, newProvider(t, b.URL, ""))
		if n := b.Stats().Connections; n != 1 {
			t.Errorf("a login, a list and 3 polls opened %d connections, want 1", n)
		}
	})

	t.Run("https", func(t *testing.T) {
		tlsServer := httptest.NewUnstartedServer(b.Handler())
		var mu sync.Mutex
		handshakes := 0
		tlsServer.Config.ConnState = func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				mu.Lock()
				handshakes++
				mu.Unlock()
			}
		}
		tlsServer.StartTLS()
		t.Cleanup(tlsServer.Close)
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsServer.Certificate().Raw}), 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, newProvider(t, tlsServer.URL, "ca_cert_file: "+caFile+"\n"))
		mu.Lock()
		defer mu.Unlock()
		if handshakes != 1 {
			t.Errorf("a login, a list and 3 polls over TLS opened %d connections, want 1", handshakes)
		}
	})
}

func TestSelfHostedWithPrivateCA(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "K", "over-tls")
	tlsServer := httptest.NewUnstartedServer(b.Handler())
	tlsServer.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	tlsServer.StartTLS()
	t.Cleanup(tlsServer.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	cert := tlsServer.Certificate()
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParseCertificate(cert.Raw); err != nil {
		t.Fatal(err)
	}

	p := newProvider(t, tlsServer.URL+"/api", "ca_cert_file: "+caFile+"\n")
	assertFields(t, fetchFields(t, p, "environment: prod"), map[string]string{"K": "over-tls"})

	untrusted := newProvider(t, tlsServer.URL, "")
	_, err := untrusted.Fetch(context.Background(), []*providers.Source{source(t, untrusted, "environment: prod")})
	assertError(t, err, providers.ErrUnavailable, []string{tlsServer.URL, "certificate"})
}

func TestStrictOptions(t *testing.T) {
	bad := []struct{ settings, want string }{
		{"site_url: https://x\nproject_id: p\nadress: y\n", `unknown key "adress"`},
		{"site_url: https://x\n", "missing `project_id:`"},
		{"site_url: https://x\nproject_id: p\nproject_slug: s\n", "set one"},
		{"site_url: ftp://x\nproject_id: p\n", "not an http(s) URL"},
		{"project_id: p\nauth:\n  method: oauth\n", `unknown method "oauth"`},
		{"project_id: p\nauth:\n  methd: token\n", `unknown key "methd"`},
		{"project_id: p\nauth:\n  identity_id: x\n", "method: kubernetes"},
		{"project_id: p\nrecursive: true\n", `unknown key "recursive"`},
	}
	for _, c := range bad {
		o, err := config.OptionsFromYAML(c.settings)
		if err != nil {
			t.Fatal(err)
		}
		_, err = New("infisical", o, providers.Env{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("settings %q: error %v, want one containing %q", c.settings, err, c.want)
		}
	}

	p := newProvider(t, "https://infisical.example.com", "")
	if p.siteURL != "https://infisical.example.com" {
		t.Errorf("site URL %q", p.siteURL)
	}
	badSources := []struct{ source, want string }{
		{"environment: prod\npth: /api", `unknown key "pth"`},
		{"environment: prod\npath: api", "not an Infisical folder path"},
		{"environment: prod\npath: /a b", "not an Infisical folder path"},
		{"environment: prod\nversion: 3", "name the secret with `secret:`"},
		{"environment: prod\nsecret: K\nversion: latest", "must be a secret version number"},
		{"environment: prod\nsecret: K\nrecursive: true", "cannot be combined"},
		{"environment: prod\nsecret: a/K", "put its folder in `path:`"},
		{"environment: prod\nrecursive: yes please", "want true or false"},
		{"environment: prod\ntags: ['']", "cannot be empty"},
	}
	for _, c := range badSources {
		_, err := config.SourceFromYAML(p, "infisical", c.source)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("source %q: error %v, want one containing %q", c.source, err, c.want)
		}
	}
	if env := source(t, p, "path: /api").Ref.(*ref).env; env != config.TestEnvironment {
		t.Errorf("a source without environment: reads %q, want secretrun's environment %q", env, config.TestEnvironment)
	}
	if r := source(t, p, "environment: prod").Ref.String(); r != "/" {
		t.Errorf("default path: ref %q", r)
	}
}
