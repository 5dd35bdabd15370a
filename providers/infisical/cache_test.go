package infisical

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/infisical/infisicaltest"
	"github.com/secretrun/secretrun/providers/internal/logincache"
	"github.com/secretrun/secretrun/providers/keyring"
	"github.com/secretrun/secretrun/providers/providertest"
)

// osKeyring is the OS keyring (gnome-keyring under scripts/test); the test
// is skipped without one, and fails under CI=true.
func osKeyring(t *testing.T) providers.Keyring {
	t.Helper()
	kr := keyring.OS{}
	err := kr.Set("secretrun-probe", "infisical-cache", providers.NewSecret("probe"))
	if err == nil {
		err = kr.Delete("secretrun-probe", "infisical-cache")
	}
	if err != nil {
		providertest.Need(t, "OS keyring", err)
	}
	return kr
}

// cachedRun is one run against b with `cache: keyring`: a new provider, as
// a new process builds, one Fetch and Close. It returns the logins the
// server saw during the run.
func cachedRun(t *testing.T, b *backend, kr providers.Keyring, env map[string]string) (logins int, err error) {
	t.Helper()
	before := b.Count(infisicaltest.Login)
	p := cachingProvider(t, b, kr, env)
	defer p.Close(context.Background())
	var results []providers.Result
	results, err = p.Fetch(context.Background(), []*providers.Source{source(t, p, "environment: prod")})
	if err == nil && results[0].Err == nil && results[0].Fields["K"].Value.Reveal() != "v" {
		t.Fatalf("fetched %v", results[0].Fields)
	}
	if stderr := p.env.Stderr.(*syncBuffer).String(); stderr != "" {
		t.Errorf("warnings: %q", stderr)
	}
	return b.Count(infisicaltest.Login) - before, err
}

func cachingProvider(t *testing.T, b *backend, kr providers.Keyring, env map[string]string) *provider {
	t.Helper()
	o, err := config.OptionsFromYAML(fmt.Sprintf("site_url: %s\nproject_id: %s\nauth: {cache: keyring}\n", b.URL, projectID))
	if err != nil {
		t.Fatal(err)
	}
	pr, err := New("infisical", o, providers.Env{Getenv: func(k string) string { return env[k] }, Keyring: kr, Stderr: &syncBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	p := pr.(*provider)
	p.retry = retryPolicy{attempts: 2, base: time.Millisecond, max: time.Millisecond}
	t.Cleanup(func() {
		creds, err := p.credentials()
		if err == nil {
			_, _ = logincache.Forget(kr, p.cacheIdentity(creds))
		}
	})
	return p
}

// The second run starts with the first run's access token: no login.
func TestLoginCacheReusesAccessToken(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "K", "v")
	kr := osKeyring(t)
	if n, err := cachedRun(t, b, kr, machineEnv); err != nil || n != 1 {
		t.Fatalf("first run: %d logins, %v", n, err)
	}
	if n, err := cachedRun(t, b, kr, machineEnv); err != nil || n != 0 {
		t.Fatalf("second run: %d logins, %v; want none", n, err)
	}
	if c := b.Counts(); c[infisicaltest.List] != 2 {
		t.Errorf("requests %v, want one list per run", c)
	}

	// Revoked behind secretrun's back: a refused list, a login, and the
	// list again, with nothing for the user to see.
	b.RevokeTokens()
	if n, err := cachedRun(t, b, kr, machineEnv); err != nil || n != 1 {
		t.Fatalf("after revocation: %d logins, %v; want one", n, err)
	}
	if n, err := cachedRun(t, b, kr, machineEnv); err != nil || n != 0 {
		t.Fatalf("after the new login: %d logins, %v; want none", n, err)
	}

	// logout forgets the token: the next run logs in.
	if err := cachingProvider(t, b, kr, machineEnv).Logout(context.Background()); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if n, err := cachedRun(t, b, kr, machineEnv); err != nil || n != 1 {
		t.Fatalf("after logout: %d logins, %v; want one", n, err)
	}
}

// Another client secret never gets the token of the one that logged in.
func TestLoginCacheChangedClientSecretLogsIn(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "K", "v")
	kr := osKeyring(t)
	if _, err := cachedRun(t, b, kr, machineEnv); err != nil {
		t.Fatal(err)
	}
	wrong := map[string]string{"INFISICAL_CLIENT_ID": clientID, "INFISICAL_CLIENT_SECRET": "cs-wrong-secret-value"}
	n, err := cachedRun(t, b, kr, wrong)
	if n == 0 || !errors.Is(err, providers.ErrAuth) {
		t.Fatalf("wrong client secret: %d logins, %v; want a refused login", n, err)
	}
	if strings.Contains(err.Error(), "cs-wrong-secret-value") || strings.Contains(err.Error(), clientSecret) {
		t.Errorf("the error shows a client secret: %v", err)
	}
}

// A token near its max TTL is not reused, though renewals would still
// extend its TTL: it ends at the max TTL whatever is done.
func TestLoginCacheTokenNearItsMaxTTLLogsIn(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "K", "v")
	kr := osKeyring(t)
	// Margin of a 1h TTL: 6 minutes; the max TTL leaves 5.
	b.SetTokenTTL(b.identity, time.Hour, 5*time.Minute)
	if _, err := cachedRun(t, b, kr, machineEnv); err != nil {
		t.Fatal(err)
	}
	if n, err := cachedRun(t, b, kr, machineEnv); err != nil || n != 1 {
		t.Fatalf("second run: %d logins, %v; want one", n, err)
	}
	b.SetTokenTTL(b.identity, time.Hour, 2*time.Hour)
	if _, err := cachedRun(t, b, kr, machineEnv); err != nil {
		t.Fatal(err)
	}
	if n, err := cachedRun(t, b, kr, machineEnv); err != nil || n != 0 {
		t.Fatalf("with 2h of max TTL: %d logins, %v; want none", n, err)
	}
}

// Without `cache:` nothing reaches the keyring's cache service, and each
// run logs in; a static token cannot be cached at all.
func TestLoginCacheOffAndStaticToken(t *testing.T) {
	b := newBackend(t)
	b.SetSecret(projectID, "prod", "/", "K", "v")
	kr := &serviceLog{Keyring: providertest.NewKeyring()}
	for range 2 {
		o := mustOptions(t, fmt.Sprintf("site_url: %s\nproject_id: %s\n", b.URL, projectID))
		p, err := New("infisical", o, providers.Env{Getenv: func(k string) string { return machineEnv[k] }, Keyring: kr})
		if err != nil {
			t.Fatal(err)
		}
		fetch(t, p, "environment: prod")
		p.(*provider).Close(context.Background())
	}
	if n := b.Count(infisicaltest.Login); n != 2 {
		t.Errorf("%d logins for two runs without the cache, want 2", n)
	}
	for _, s := range kr.services {
		if s == logincache.Service {
			t.Errorf("the cache's keyring service was used: %v", kr.services)
			break
		}
	}
	if _, err := New("infisical", mustOptions(t, "project_id: x\nauth: {method: token, cache: keyring}"), providers.Env{}); err == nil || !strings.Contains(err.Error(), "cache applies to methods universal and kubernetes") {
		t.Errorf("cache with method token: %v", err)
	}
	if _, err := New("infisical", mustOptions(t, "project_id: x\nauth: {cache: yes}"), providers.Env{}); err == nil || !strings.Contains(err.Error(), `cache "yes" is not keyring or none`) {
		t.Errorf("cache: yes: %v", err)
	}
}

// serviceLog records the keyring services used.
type serviceLog struct {
	providers.Keyring
	services []string
}

func (k *serviceLog) Get(service, key string) (providers.Secret, error) {
	k.services = append(k.services, service)
	return k.Keyring.Get(service, key)
}

func (k *serviceLog) Set(service, key string, v providers.Secret) error {
	k.services = append(k.services, service)
	return k.Keyring.Set(service, key, v)
}

func mustOptions(t *testing.T, yaml string) providers.Options {
	t.Helper()
	o, err := config.OptionsFromYAML(yaml)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
