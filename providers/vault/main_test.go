package vault

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// One dev server serves the whole package; PostgreSQL starts on first use.
var (
	server    *vaulttest.Vault
	serverErr error

	pgOnce sync.Once
	pg     *vaulttest.Postgres
	pgErr  error
	pgStop func()
)

func TestMain(m *testing.M) {
	var stop func()
	server, stop, serverErr = vaulttest.StartVault()
	code := m.Run()
	if stop != nil {
		stop()
	}
	if pgStop != nil {
		pgStop()
	}
	os.Exit(code)
}

// needVault returns the shared server, or skips (fails under CI=true).
func needVault(t *testing.T) *vaulttest.Vault {
	t.Helper()
	vaulttest.Need(t, "Vault server", serverErr)
	return server
}

func needPostgres(t *testing.T) *vaulttest.Postgres {
	t.Helper()
	pgOnce.Do(func() { pg, pgStop, pgErr = vaulttest.StartPostgres() })
	vaulttest.Need(t, "PostgreSQL", pgErr)
	return pg
}

// testEnv is a providers.Env with exactly the given variables.
type testEnv struct {
	vars    map[string]string
	keyring *providertest.Keyring
	stderr  *bytes.Buffer
	home    string
}

func (e *testEnv) env() providers.Env {
	return providers.Env{
		Getenv:  func(k string) string { return e.vars[k] },
		HomeDir: e.home,
		Keyring: e.keyring,
		Stderr:  e.stderr,
	}
}

func newEnv(vars map[string]string) *testEnv {
	if vars == nil {
		vars = map[string]string{}
	}
	return &testEnv{vars: vars, keyring: providertest.NewKeyring(), stderr: &bytes.Buffer{}}
}

// newProvider builds a provider from a YAML block and an environment.
func newProvider(t *testing.T, yaml string, e *testEnv) *provider {
	t.Helper()
	opts, err := config.OptionsFromYAML(yaml)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New("test", opts, e.env())
	if err != nil {
		t.Fatal(err)
	}
	return p.(*provider)
}

// rootProvider is a provider talking to the shared server with the root
// token, as VAULT_ADDR and VAULT_TOKEN would set it up.
func rootProvider(t *testing.T, v *vaulttest.Vault) *provider {
	return newProvider(t, "{}", newEnv(map[string]string{"VAULT_ADDR": v.Addr, "VAULT_TOKEN": vaulttest.RootToken}))
}

func source(t *testing.T, p providers.Provider, yaml string) *providers.Source {
	t.Helper()
	src, err := config.SourceFromYAML(p, "test", yaml)
	if err != nil {
		t.Fatalf("source %q: %v", yaml, err)
	}
	return src
}

func fetchOne(t *testing.T, p providers.Provider, yaml string) providers.Result {
	t.Helper()
	res, err := p.Fetch(context.Background(), []*providers.Source{source(t, p, yaml)})
	if err != nil {
		t.Fatalf("Fetch %q: %v", yaml, err)
	}
	return res[0]
}

func versionsOf(t *testing.T, p providers.Provider, srcs ...*providers.Source) []string {
	t.Helper()
	out, err := p.(providers.Versioner).Versions(context.Background(), srcs)
	if err != nil {
		t.Fatalf("Versions: %v", err)
	}
	return out
}

func values(r providers.Result) map[string]string {
	out := map[string]string{}
	for k, f := range r.Fields {
		out[k] = f.Value.Reveal()
	}
	return out
}

func kvPut(t *testing.T, c *api.Client, mount, path string, data map[string]any) {
	t.Helper()
	if _, err := c.KVv2(mount).Put(context.Background(), path, data); err != nil {
		t.Fatalf("kv put %s/%s: %v", mount, path, err)
	}
}

func write(t *testing.T, c *api.Client, path string, data map[string]any) *api.Secret {
	t.Helper()
	s, err := c.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return s
}

// unique makes names that do not collide between tests sharing a server.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

// mustNotContain fails when err's message shows a value.
func mustNotContain(t *testing.T, err error, secretValues ...string) {
	t.Helper()
	for _, v := range secretValues {
		if strings.Contains(err.Error(), v) {
			t.Fatalf("error message contains a secret value: %q", err)
		}
	}
}

// scripted is a Prompter with canned answers.
type scripted struct {
	answers []string
	asked   []string
}

func (s *scripted) next(label string) (string, error) {
	s.asked = append(s.asked, label)
	if len(s.answers) == 0 {
		return "", fmt.Errorf("unexpected prompt %q", label)
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a, nil
}

func (s *scripted) Ask(label string) (string, error) { return s.next(label) }

func (s *scripted) AskSecret(label string) (providers.Secret, error) {
	a, err := s.next(label)
	return providers.NewSecret(a), err
}
