package awssm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/providertest"
)

var moto mototest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	moto.Stop()
	os.Exit(code)
}

// recorder is the SDK's HTTP transport in tests: it counts the calls by
// operation, notes every host asked for, answers 404 for hosts other than
// allowed without dialling them, and can answer some calls itself.
type recorder struct {
	allowed string
	base    http.RoundTripper
	// answer, when set, may answer a call instead of the server.
	answer func(op string, n int, req *http.Request) *http.Response

	mu    sync.Mutex
	calls map[string]int
	hosts []string
}

func newRecorder(t *testing.T, endpoint string) *recorder {
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{allowed: u.Host, calls: map[string]int{}, base: http.DefaultTransport}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	op := operation(req)
	r.mu.Lock()
	r.hosts = append(r.hosts, req.URL.Host)
	r.calls[op]++
	n := r.calls[op]
	r.mu.Unlock()
	if req.URL.Host != r.allowed {
		// As a host with nothing there would: quickly, so that the SDK
		// gives up without retrying.
		return &http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found", Header: http.Header{},
			Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
	}
	if r.answer != nil {
		if resp := r.answer(op, n, req); resp != nil {
			return resp, nil
		}
	}
	return r.base.RoundTrip(req)
}

// operation names an AWS call: X-Amz-Target for JSON protocols
// ("BatchGetSecretValue"), the Action parameter for query protocols (STS).
func operation(req *http.Request) string {
	if t := req.Header.Get("X-Amz-Target"); t != "" {
		return t[strings.LastIndex(t, ".")+1:]
	}
	if req.Body != nil && req.Method == http.MethodPost {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		if q, err := url.ParseQuery(string(body)); err == nil && q.Get("Action") != "" {
			return q.Get("Action")
		}
	}
	return req.Method + " " + req.URL.Path
}

func (r *recorder) count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[op]
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = map[string]int{}
	r.hosts = nil
}

func (r *recorder) sawHost(host string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.hosts {
		if strings.HasPrefix(h, host) {
			return true
		}
	}
	return false
}

func (r *recorder) client() *http.Client { return &http.Client{Transport: r} }

// awsError is a response as Secrets Manager (JSON 1.1) sends an error.
func awsError(status int, code, message string) *http.Response {
	body := fmt.Sprintf(`{"__type":%q,"message":%q}`, code, message)
	return &http.Response{
		StatusCode: status,
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header:     http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "X-Amzn-Errortype": {code}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}

// jsonResponse is a successful response with body.
func jsonResponse(body string) *http.Response {
	return &http.Response{
		StatusCode: http.StatusOK,
		Status:     "200 OK",
		Header:     http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}

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
func newTest(t *testing.T, settings string, vars map[string]string, h hooks) *provider {
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
	return newTest(t, "{}", srv.Env(), hooks{httpClient: rec.client()})
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
