package awsssm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

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

const (
	secure     = ssmtypes.ParameterTypeSecureString
	plainType  = ssmtypes.ParameterTypeString
	stringList = ssmtypes.ParameterTypeStringList
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

// newTest builds a provider instance named "ssm" from settings YAML.
func newTest(t *testing.T, settings string, vars map[string]string, h awsconf.Hooks) *provider {
	t.Helper()
	opts, err := config.OptionsFromYAML(settings)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProvider("ssm", opts, envOf(t, vars), h)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// forMoto builds a provider for srv with static keys and a region in Env,
// traffic going through rec.
func forMoto(t *testing.T, srv *mototest.Server, rec *mototest.Recorder) *provider {
	t.Helper()
	return newTest(t, "{}", srv.Env(), awsconf.Hooks{HTTPClient: rec.Client()})
}

func src(t *testing.T, p providers.Provider, yaml string) *providers.Source {
	t.Helper()
	s, err := config.SourceFromYAML(p, "ssm", yaml)
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

func versionsOf(t *testing.T, p *provider, srcs ...*providers.Source) []string {
	t.Helper()
	out, err := p.Versions(context.Background(), srcs)
	if err != nil {
		t.Fatalf("Versions: %v", err)
	}
	if len(out) != len(srcs) {
		t.Fatalf("%d labels for %d sources", len(out), len(srcs))
	}
	return out
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

// plainValue reveals a parameter source's one value.
func plainValue(t *testing.T, r providers.Result) string {
	t.Helper()
	got := values(t, r)
	if len(got) != 1 {
		t.Fatalf("got %d fields, want the one plain value", len(got))
	}
	v, ok := got[providers.Plain]
	if !ok {
		t.Fatalf("the one field is not the plain value")
	}
	return v
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

func keysOf(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func src0(p providers.Provider, yaml string) (*providers.Source, error) {
	return config.SourceFromYAML(p, "ssm", yaml)
}

// holdUntil answers nothing itself: it holds the first n calls of op until
// all n are in flight, and fails the test if they never are.
func holdUntil(t *testing.T, op string, n int) func(string, int, *http.Request) *http.Response {
	var arrived sync.WaitGroup
	arrived.Add(n)
	together := make(chan struct{})
	go func() { arrived.Wait(); close(together) }()
	return func(got string, k int, _ *http.Request) *http.Response {
		if got == op && k <= n {
			arrived.Done()
			select {
			case <-together:
			case <-time.After(10 * time.Second):
				t.Errorf("the %d %s calls were not in flight at once", n, op)
			}
		}
		return nil
	}
}

// body reads a request's body and puts it back.
func body(req *http.Request) string {
	if req.Body == nil {
		return ""
	}
	b, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}
