package awssm

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
	"github.com/secretrun/secretrun/providers/providertest"
)

var moto mototest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	moto.Stop()
	os.Exit(code)
}

type recorder = mototest.Recorder

func newRecorder(t *testing.T, endpoint string) *recorder { return mototest.NewRecorder(t, endpoint) }

var (
	awsError     = mototest.AWSError
	jsonResponse = mototest.JSONResponse
)

// envOf makes a providers.Env whose Getenv answers from vars only, with an
// empty home, so that nothing of the machine running the tests leaks in.
func envOf(t *testing.T, vars map[string]string) providers.Env {
	// The SDK reads AWS_CA_BUNDLE from the process itself, and cannot add
	// a CA to the plain http.Client the recorder provides.
	t.Setenv("AWS_CA_BUNDLE", "")
	return providers.Env{
		Getenv:  func(k string) string { return vars[k] },
		HomeDir: t.TempDir(),
		Keyring: providertest.NewKeyring(),
	}
}

// newTest builds a provider instance named "aws" from settings YAML.
func newTest(t *testing.T, settings string, vars map[string]string, h awsconf.Hooks) *provider {
	t.Helper()
	opts, err := config.OptionsFromYAML(settings)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProvider("aws", opts, envOf(t, vars), h)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// forMoto builds a provider for srv with static keys and a region in Env,
// traffic going through rec.
func forMoto(t *testing.T, srv *mototest.Server, rec *recorder) *provider {
	t.Helper()
	return newTest(t, "{}", srv.Env(), awsconf.Hooks{HTTPClient: rec.Client()})
}

func src(t *testing.T, p providers.Provider, yaml string) *providers.Source {
	t.Helper()
	s, err := config.SourceFromYAML(p, "aws", yaml)
	if err != nil {
		t.Fatalf("source %q: %v", yaml, err)
	}
	return s
}

func fetch(t *testing.T, p providers.Provider, srcs ...*providers.Source) []providers.Result {
	t.Helper()
	results, err := p.Fetch(context.Background(), srcs)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(results) != len(srcs) {
		t.Fatalf("%d results for %d sources", len(results), len(srcs))
	}
	return results
}

// values reveals a result's fields, failing on its error.
func values(t *testing.T, r providers.Result) map[string]string {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("result error: %v", r.Err)
	}
	out := map[string]string{}
	for k, f := range r.Fields {
		out[k] = f.Value.Reveal()
	}
	return out
}

func wantErr(t *testing.T, err, sentinel error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one wrapping %v", sentinel)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("error %q does not wrap %v", err, sentinel)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not contain %q", err, c)
		}
	}
}
