package serve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// healthServer answers /healthz with 503 until ready is set, then 200.
func healthServer(t *testing.T) (port int, ready *atomic.Bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ready = new(atomic.Bool)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/healthz":
			http.NotFound(w, r)
		case ready.Load():
			w.Write([]byte("ok"))
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port, ready
}

func waitFor(c Check, d time.Duration, port int, n *Notify) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.Wait(ctx, port, n)
}

func TestReadyHTTPWaitsForA2xx(t *testing.T) {
	port, ready := healthServer(t)
	check := Check{HTTP: "/healthz", Interval: 20 * time.Millisecond}

	err := waitFor(check, 300*time.Millisecond, port, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("answered 503: %v, want not ready when the context ends", err)
	}
	errorContains(t, err, "503 Service Unavailable", "/healthz")

	done := make(chan error, 1)
	go func() { done <- waitFor(check, 10*time.Second, port, nil) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("ready before the child said so: %v", err)
	default:
	}
	ready.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("answered 200: %v", err)
	}
}

func TestReadyHTTPFullURL(t *testing.T) {
	port, ready := healthServer(t)
	ready.Store(true)
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/healthz"
	// Handoff mode: the child has no port of its own, the URL says where.
	if err := waitFor(Check{HTTP: url}, 10*time.Second, 0, nil); err != nil {
		t.Fatal(err)
	}
	// A 404 is not ready either.
	err := waitFor(Check{HTTP: url + "/nothing", Interval: 20 * time.Millisecond}, 200*time.Millisecond, 0, nil)
	errorContains(t, err, "404 Not Found")
}

func TestReadyHTTPRefusedUntilTheChildListens(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	err = waitFor(Check{HTTP: "/healthz", Interval: 20 * time.Millisecond}, 200*time.Millisecond, port, nil)
	errorContains(t, err, "connection refused")
}

func TestReadyTCP(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for _, check := range []Check{{TCP: "true"}, {TCP: "port"}, {TCP: addr}} {
		check.Interval = 20 * time.Millisecond
		err := waitFor(check, 200*time.Millisecond, port, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%+v with nothing listening: %v", check, err)
		}
		errorContains(t, err, "connection refused")
	}
	done := make(chan error, 1)
	go func() {
		done <- waitFor(Check{TCP: "true", Interval: 20 * time.Millisecond}, 10*time.Second, port, nil)
	}()
	time.Sleep(100 * time.Millisecond)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := <-done; err != nil {
		t.Fatalf("listening: %v", err)
	}
	if err := waitFor(Check{TCP: addr}, 10*time.Second, 0, nil); err != nil {
		t.Fatalf("host:port: %v", err)
	}
}

func TestReadyDelay(t *testing.T) {
	start := time.Now()
	if err := waitFor(Check{Delay: 200 * time.Millisecond}, 10*time.Second, 0, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("ready after %s, before the delay", d)
	}
	err := waitFor(Check{Delay: time.Hour}, 50*time.Millisecond, 0, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("delay longer than the timeout: %v", err)
	}
}

func TestReadyWaitEndsWithTheCallersCause(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	exited := errors.New("the new child exited with status 3")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(100*time.Millisecond, func() { cancel(exited) })
	err = Check{TCP: "true", Interval: 20 * time.Millisecond}.Wait(ctx, port, nil)
	if !errors.Is(err, exited) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the cause and context.Canceled", err)
	}
	errorContains(t, err, "exited with status 3", "connection refused")
}

func TestReadyImpossibleChecksFailAtOnce(t *testing.T) {
	for _, tc := range []struct {
		check Check
		port  int
		want  string
	}{
		{Check{HTTP: "/healthz"}, 0, "only proxy mode"},
		{Check{HTTP: "ftp://127.0.0.1/x"}, 0, "http:// or https://"},
		{Check{HTTP: "healthz"}, 8080, "want a path"},
		{Check{TCP: "true"}, 0, "only in proxy mode"},
		{Check{TCP: "8080"}, 0, "host:port"},
		{Check{Notify: true}, 0, "no notify socket"},
		{Check{Delay: -time.Second}, 0, "negative"},
	} {
		start := time.Now()
		err := waitFor(tc.check, 10*time.Second, tc.port, nil)
		errorContains(t, err, tc.want)
		if time.Since(start) > time.Second {
			t.Errorf("%+v: took %s to fail", tc.check, time.Since(start))
		}
	}
	if err := (Check{HTTP: "/healthz", TCP: "port"}).Validate(true); err != nil {
		t.Errorf("proxy mode, own port: %v", err)
	}
}

func TestReadyZeroCheckIsReadyAtOnce(t *testing.T) {
	if err := waitFor(Check{}, time.Second, 0, nil); err != nil {
		t.Fatal(err)
	}
}
