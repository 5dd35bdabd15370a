package faultproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// blackholeTimeout is how long a client waits before a black-holed request
// counts as timed out; it is the time these tests spend per negative check.
const blackholeTimeout = 300 * time.Millisecond

// backend is the real server behind the proxy; it counts the requests that
// reach it.
type backend struct {
	addr  string
	calls atomic.Int64
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "backend %s %s", r.Method, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	b.addr = srv.Listener.Addr().String()
	return b
}

func newClient(t *testing.T, timeout time.Duration) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

// get returns the response with its body read, so the connection can be
// reused.
func get(c *http.Client, url string) (*http.Response, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

func mustGet(t *testing.T, c *http.Client, url string, wantStatus int) (*http.Response, string) {
	t.Helper()
	resp, body, err := get(c, url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: status %d (%q), want %d", url, resp.StatusCode, body, wantStatus)
	}
	return resp, body
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rawConn is a client connection the test drives by hand, to watch one
// connection across mode changes; an http.Client drops a connection that
// timed out.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// do sends a GET and waits up to wait for the response.
func (rc *rawConn) do(path string, wait time.Duration) (status int, body string, err error) {
	rc.t.Helper()
	if _, err := fmt.Fprintf(rc.nc, "GET %s HTTP/1.1\r\nHost: backend\r\n\r\n", path); err != nil {
		return 0, "", err
	}
	rc.nc.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestPassForwards(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)
	c := newClient(t, 5*time.Second)

	_, body := mustGet(t, c, p.URL()+"/v1/secret/app", http.StatusOK)
	if body != "backend GET /v1/secret/app" {
		t.Errorf("body %q, want the backend's", body)
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("backend called %d times, want 1", n)
	}
	if p.Mode() != Pass {
		t.Errorf("Mode() = %v, want pass", p.Mode())
	}
}

func TestKeepAliveReusesOneConnection(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)
	c := newClient(t, 5*time.Second)

	for i := range 5 {
		mustGet(t, c, fmt.Sprintf("%s/req/%d", p.URL(), i), http.StatusOK)
	}
	if n := p.Connections(); n != 1 {
		t.Errorf("Connections() = %d after 5 keep-alive requests, want 1", n)
	}
}

func TestRefuse(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)
	addr := p.Addr()
	c := newClient(t, 5*time.Second)
	mustGet(t, c, p.URL()+"/before", http.StatusOK)

	// Twice, since going back to Pass listens again on the same port.
	for round := range 2 {
		p.Set(Refuse)
		if nc, err := net.DialTimeout("tcp", addr, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			if nc != nil {
				nc.Close()
			}
			t.Fatalf("round %d: dial while refusing: %v, want connection refused", round, err)
		}
		// The open keep-alive connection was closed, so the client dials and
		// is refused too.
		if _, _, err := get(c, p.URL()+"/refused"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("round %d: GET while refusing: %v, want connection refused", round, err)
		}

		p.Set(Pass)
		if p.Addr() != addr {
			t.Fatalf("round %d: Addr() = %s after Pass, want %s", round, p.Addr(), addr)
		}
		mustGet(t, c, p.URL()+"/after", http.StatusOK)
	}
	if n := b.calls.Load(); n != 3 {
		t.Errorf("backend called %d times, want 3", n)
	}
}

func TestBlackholeNewConnection(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)
	p.Set(Blackhole)
	c := newClient(t, blackholeTimeout)

	if _, _, err := get(c, p.URL()+"/lost"); !isTimeout(err) {
		t.Fatalf("GET through a black hole: %v, want a timeout", err)
	}
	if n := p.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1: the black hole accepts", n)
	}
	if n := b.calls.Load(); n != 0 {
		t.Errorf("backend called %d times through a black hole, want 0", n)
	}
}

func TestBlackholeOpenConnectionStaysDead(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)
	raw := dialRaw(t, p.Addr())
	if status, _, err := raw.do("/raw", 5*time.Second); err != nil || status != http.StatusOK {
		t.Fatalf("raw GET in pass: %d, %v", status, err)
	}
	c := newClient(t, blackholeTimeout)
	mustGet(t, c, p.URL()+"/client", http.StatusOK)

	p.Set(Blackhole)
	if _, _, err := get(c, p.URL()+"/lost"); !isTimeout(err) {
		t.Fatalf("GET on an open keep-alive connection through a black hole: %v, want a timeout", err)
	}
	if n := p.Connections(); n != 2 {
		t.Errorf("Connections() = %d, want 2: the timed-out GET should have reused its open connection", n)
	}
	if _, _, err := raw.do("/lost", blackholeTimeout); !isTimeout(err) {
		t.Fatalf("raw GET through a black hole: %v, want a timeout", err)
	}

	p.Set(Pass)
	if _, _, err := raw.do("/still-lost", blackholeTimeout); !isTimeout(err) {
		t.Fatalf("raw GET on a black-holed connection after Pass: %v, want a timeout", err)
	}
	mustGet(t, c, p.URL()+"/new", http.StatusOK)
	if n := b.calls.Load(); n != 3 {
		t.Errorf("backend called %d times, want 3 (2 before the black hole, 1 after)", n)
	}
}

func isResetOrEOF(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}

func TestReset(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)
	raw := dialRaw(t, p.Addr())
	if status, _, err := raw.do("/raw", 5*time.Second); err != nil || status != http.StatusOK {
		t.Fatalf("raw GET in pass: %d, %v", status, err)
	}

	p.Set(Reset)
	raw.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := raw.br.ReadByte(); !isResetOrEOF(err) {
		t.Fatalf("read on an open connection after Reset: %v, want connection reset or EOF", err)
	}
	c := newClient(t, 5*time.Second)
	if _, _, err := get(c, p.URL()+"/reset"); !isResetOrEOF(err) {
		t.Fatalf("GET on a new connection after Reset: %v, want connection reset or EOF", err)
	}

	p.Set(Pass)
	mustGet(t, c, p.URL()+"/after", http.StatusOK)
	if n := b.calls.Load(); n != 2 {
		t.Errorf("backend called %d times, want 2", n)
	}
}

const injected503 = `{"errors":["fault proxy: injected 503"],"message":"fault proxy: injected 503"}`

func TestHTTPStatus(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)
	c := newClient(t, 5*time.Second)

	p.Set(HTTPStatus(http.StatusServiceUnavailable, 0))
	resp, body := mustGet(t, c, p.URL()+"/v1/secret/app", http.StatusServiceUnavailable)
	if body != injected503 {
		t.Errorf("body %s, want %s", body, injected503)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if ra, ok := resp.Header["Retry-After"]; ok {
		t.Errorf("Retry-After %q without a retryAfter, want none", ra)
	}

	p.Set(HTTPStatus(http.StatusTooManyRequests, 2*time.Second))
	resp, _ = mustGet(t, c, p.URL()+"/v1/secret/app", http.StatusTooManyRequests)
	if ra := resp.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2", ra)
	}

	// A request body is drained, so the connection stays usable.
	post, err := c.Post(p.URL()+"/v1/secret/app", "application/json", strings.NewReader(`{"data":{"k":"v"}}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, post.Body)
	post.Body.Close()
	if post.StatusCode != http.StatusTooManyRequests {
		t.Errorf("POST: status %d, want 429", post.StatusCode)
	}

	// Retry-After can only carry whole seconds; a fraction rounds up.
	p.Set(HTTPStatus(http.StatusTooManyRequests, 1500*time.Millisecond))
	resp, _ = mustGet(t, c, p.URL()+"/v1/secret/app", http.StatusTooManyRequests)
	if ra := resp.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q for 1.5s, want 2", ra)
	}

	if n := b.calls.Load(); n != 0 {
		t.Errorf("backend called %d times, want 0: the proxy answers itself", n)
	}
	if n := p.Injected(); n != 4 {
		t.Errorf("Injected() = %d, want 4", n)
	}
	if n := p.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1: injected answers keep the connection alive", n)
	}
}

func TestHTTPStatusOnOpenConnection(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)
	c := newClient(t, 5*time.Second)
	mustGet(t, c, p.URL()+"/before", http.StatusOK)

	p.Set(HTTPStatus(http.StatusInternalServerError, 0))
	mustGet(t, c, p.URL()+"/during", http.StatusInternalServerError)
	if n := p.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1: the open connection should be answered", n)
	}

	p.Set(Pass)
	_, body := mustGet(t, c, p.URL()+"/after", http.StatusOK)
	if body != "backend GET /after" {
		t.Errorf("body %q after Pass, want the backend's", body)
	}
	if n := b.calls.Load(); n != 2 {
		t.Errorf("backend called %d times, want 2", n)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p, err := New(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	forwarding := dialRaw(t, p.Addr())
	if status, _, err := forwarding.do("/raw", 5*time.Second); err != nil || status != http.StatusOK {
		t.Fatalf("raw GET in pass: %d, %v", status, err)
	}
	p.Set(Blackhole)
	silenced := dialRaw(t, p.Addr())
	p.Set(HTTPStatus(http.StatusServiceUnavailable, 0))
	answering := dialRaw(t, p.Addr())

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for name, rc := range map[string]*rawConn{"forwarding": forwarding, "black-holed": silenced, "answering": answering} {
		rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := rc.br.ReadByte(); !isResetOrEOF(err) {
			t.Errorf("read on a %s connection after Close: %v, want EOF", name, err)
		}
	}
	if nc, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second); err == nil {
		nc.Close()
		t.Error("dial after Close succeeded")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestSetWhileBusy switches modes under concurrent requests, for the race
// detector, and checks the proxy still forwards afterwards.
func TestSetWhileBusy(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := newClient(t, 100*time.Millisecond)
			for {
				select {
				case <-stop:
					return
				default:
				}
				get(c, p.URL()+"/busy")
			}
		})
	}
	modes := []Mode{Pass, HTTPStatus(503, 0), Blackhole, Pass, Reset, Refuse, HTTPStatus(429, time.Second)}
	for i := range 60 {
		p.Set(modes[i%len(modes)])
		time.Sleep(time.Millisecond) // let requests arrive in each mode
	}
	close(stop)
	wg.Wait()

	p.Set(Pass)
	mustGet(t, newClient(t, 5*time.Second), p.URL()+"/after", http.StatusOK)
}

func TestModeValues(t *testing.T) {
	t.Parallel()
	if HTTPStatus(429, 1500*time.Millisecond) != HTTPStatus(429, 2*time.Second) {
		t.Error("HTTPStatus(429, 1.5s) != HTTPStatus(429, 2s), want equal: Retry-After has whole seconds")
	}
	if HTTPStatus(503, 0) == HTTPStatus(500, 0) {
		t.Error("HTTPStatus(503, 0) == HTTPStatus(500, 0)")
	}
	for m, want := range map[Mode]string{
		Pass:                         "pass",
		Refuse:                       "refuse",
		Blackhole:                    "blackhole",
		Reset:                        "reset",
		HTTPStatus(503, 0):           "http 503",
		HTTPStatus(429, time.Second): "http 429, retry after 1s",
	} {
		if got := m.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}

	b := newBackend(t)
	p := Start(t, b.addr)
	p.Set(HTTPStatus(503, 0))
	if p.Mode() != HTTPStatus(503, 0) {
		t.Errorf("Mode() = %v after Set(HTTPStatus(503, 0))", p.Mode())
	}
}
