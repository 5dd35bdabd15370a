package awsssm

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

var moto mototest.Shared

// The checks every AWS provider's tests make; src names the instance.
var (
	envOf      = mototest.Env
	fetch      = mototest.Fetch
	versionsOf = mototest.Versions
	values     = mototest.Values
	wantErr    = mototest.WantErr
)

func src(t *testing.T, p providers.Provider, yaml string) *providers.Source {
	t.Helper()
	return mototest.Source(t, p, "ssm", yaml)
}

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

// newTest builds a provider instance named "ssm" from settings YAML.
func newTest(t *testing.T, settings string, vars map[string]string, h awsconf.Hooks) *provider {
	t.Helper()
	p, err := newProvider("ssm", mototest.Options(t, settings), envOf(t, vars), h)
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
