package awssm

import (
	"os"
	"testing"

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
	return mototest.Source(t, p, "aws", yaml)
}

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

// newTest builds a provider instance named "aws" from settings YAML.
func newTest(t *testing.T, settings string, vars map[string]string, h awsconf.Hooks) *provider {
	t.Helper()
	p, err := newProvider("aws", mototest.Options(t, settings), envOf(t, vars), h)
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
