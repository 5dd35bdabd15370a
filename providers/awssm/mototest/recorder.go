package mototest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Recorder is the SDK's HTTP transport in tests: it counts the calls by
// operation, notes every host asked for, answers 404 for hosts other than
// the server's without dialling them, and can answer some calls itself.
type Recorder struct {
	// Answer, when set, may answer a call instead of the server: op is the
	// operation, n how many calls of it there were, this one included.
	Answer func(op string, n int, req *http.Request) *http.Response

	allowed string
	base    http.RoundTripper

	mu    sync.Mutex
	calls map[string]int
	hosts []string
}

// NewRecorder returns a Recorder that lets calls to endpoint through.
func NewRecorder(t testing.TB, endpoint string) *Recorder {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return &Recorder{allowed: u.Host, calls: map[string]int{}, base: http.DefaultTransport}
}

// RoundTrip records req and passes it on.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
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
	if r.Answer != nil {
		if resp := r.Answer(op, n, req); resp != nil {
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

// Count is how many calls of op there were.
func (r *Recorder) Count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[op]
}

// Reset forgets the calls and hosts seen so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = map[string]int{}
	r.hosts = nil
}

// SawHost reports whether a call went to host.
func (r *Recorder) SawHost(host string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.hosts {
		if strings.HasPrefix(h, host) {
			return true
		}
	}
	return false
}

// Hosts lists the hosts of every call, in order.
func (r *Recorder) Hosts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.hosts...)
}

// Client is an HTTP client that goes through r.
func (r *Recorder) Client() *http.Client { return &http.Client{Transport: r} }

// AWSError is a response as a JSON 1.1 service (Secrets Manager, SSM) sends
// an error.
func AWSError(status int, code, message string) *http.Response {
	body := fmt.Sprintf(`{"__type":%q,"message":%q}`, code, message)
	return &http.Response{
		StatusCode: status,
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header:     http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "X-Amzn-Errortype": {code}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}

// JSONResponse is a successful JSON 1.1 response with body.
func JSONResponse(body string) *http.Response {
	return &http.Response{
		StatusCode: http.StatusOK,
		Status:     "200 OK",
		Header:     http.Header{"Content-Type": {"application/x-amz-json-1.1"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}
