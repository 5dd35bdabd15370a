package serve

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// backend is a TCP server on 127.0.0.1 that plays a child. Each
// connection gets its own goroutine running serve.
type backend struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func startBackend(t testing.TB, serve func(net.Conn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveBackend(t, ln, serve)
}

func serveBackend(t testing.TB, ln net.Listener, serve func(net.Conn)) *backend {
	b := &backend{ln: ln, open: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.open[c] = struct{}{}
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				serve(c)
				c.Close()
				b.mu.Lock()
				delete(b.open, c)
				b.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *backend) addr() string { return b.ln.Addr().String() }

// close stops the server and cuts its open connections, as a child's
// exit would.
func (b *backend) close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.open {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// echoUpper reads the whole request, until the client's half-close, and
// only then answers with it in upper case and closes: a client gets its
// answer only if its FIN went through the proxy, and sees the end only if
// the backend's FIN came back.
func echoUpper(c net.Conn) {
	data, err := io.ReadAll(c)
	if err != nil {
		return
	}
	c.Write(bytes.ToUpper(data))
}

// namedLines answers each line with name and the line, so a test can tell
// which backend a connection is on, at any time in its life.
func namedLines(name string) func(net.Conn) {
	return func(c net.Conn) {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			if _, err := fmt.Fprintf(c, "%s %s\n", name, sc.Text()); err != nil {
				return
			}
		}
	}
}

// startProxy serves a proxy on a fresh loopback port and tears it down when
// the test ends.
func startProxy(t testing.TB) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(ln, nil)
	served := make(chan error, 1)
	go func() { served <- p.Serve() }()
	t.Cleanup(func() {
		p.CloseAll()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return p
}

func dial(t testing.TB, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c.(*net.TCPConn)
}

// request sends body, half-closes and reads the whole answer.
func request(t testing.TB, c *net.TCPConn, body string) string {
	t.Helper()
	if _, err := io.WriteString(c, body); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return string(got)
}

// line sends one line and reads one back.
func line(t testing.TB, c net.Conn, r *bufio.Reader, s string) string {
	t.Helper()
	if _, err := fmt.Fprintln(c, s); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("answer to %q: %v", s, err)
	}
	return got[:len(got)-1]
}

func TestProxyForwardsBothWaysWithHalfClose(t *testing.T) {
	b := startBackend(t, echoUpper)
	p := startProxy(t)
	p.SetBackend(b.addr())

	// Larger than any socket buffer, so the bytes are really streamed.
	body := bytes.Repeat([]byte("secretrun proxies bytes. "), 200_000)
	if got := request(t, dial(t, p), string(body)); got != string(bytes.ToUpper(body)) {
		t.Fatalf("got %d bytes back, want %d, upper-cased", len(got), len(body))
	}
}

func TestProxyPassesTheBackendsHalfCloseToTheClient(t *testing.T) {
	// The backend says its piece and half-closes at once, then still
	// reads what the client sends afterwards.
	received := make(chan string, 1)
	b := startBackend(t, func(c net.Conn) {
		io.WriteString(c, "hello\n")
		c.(*net.TCPConn).CloseWrite()
		rest, _ := io.ReadAll(c)
		received <- string(rest)
	})
	p := startProxy(t)
	p.SetBackend(b.addr())
	c := dial(t, p)
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello\n" {
		t.Fatalf("read %q, %v; want hello and the end", got, err)
	}
	request(t, c, "after the backend's FIN")
	if got := <-received; got != "after the backend's FIN" {
		t.Fatalf("backend received %q", got)
	}
}

func TestProxySwitchesNewConnectionsOldOnesKeepTheirBackend(t *testing.T) {
	oldChild := startBackend(t, namedLines("old"))
	newChild := startBackend(t, namedLines("new"))
	p := startProxy(t)
	p.SetBackend(oldChild.addr())

	c1 := dial(t, p)
	r1 := bufio.NewReader(c1)
	if got := line(t, c1, r1, "1"); got != "old 1" {
		t.Fatalf("before the switch: %q", got)
	}
	p.SetBackend(newChild.addr())
	c2 := dial(t, p)
	r2 := bufio.NewReader(c2)
	if got := line(t, c2, r2, "2"); got != "new 2" {
		t.Fatalf("a connection after the switch: %q", got)
	}
	if got := line(t, c1, r1, "3"); got != "old 3" {
		t.Fatalf("the old connection after the switch: %q", got)
	}
	if n := p.Open(oldChild.addr()); n != 1 {
		t.Errorf("Open(old) = %d, want 1", n)
	}
	if n := p.Open(newChild.addr()); n != 1 {
		t.Errorf("Open(new) = %d, want 1", n)
	}
	drained := p.Drained(oldChild.addr())
	select {
	case <-drained:
		t.Fatal("old child drained while a connection is open to it")
	default:
	}
	c1.Close()
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("old child not drained after its last connection closed")
	}
	if n := p.Open(oldChild.addr()); n != 0 {
		t.Errorf("Open(old) = %d after drain", n)
	}
	if got := line(t, c2, r2, "4"); got != "new 4" {
		t.Fatalf("new connection after the old drained: %q", got)
	}
}

func TestProxyHoldsConnectionsUntilABackendIsSet(t *testing.T) {
	p := startProxy(t)
	c := dial(t, p)
	answer := make(chan string, 1)
	go func() {
		got, _ := io.ReadAll(c)
		answer <- string(got)
	}()
	io.WriteString(c, "waited")
	c.CloseWrite()
	select {
	case got := <-answer:
		t.Fatalf("answered %q with no backend", got)
	case <-time.After(200 * time.Millisecond):
	}
	b := startBackend(t, echoUpper)
	p.SetBackend(b.addr())
	if got := <-answer; got != "WAITED" {
		t.Fatalf("after SetBackend: %q", got)
	}
	// Back to no backend: new connections wait again.
	p.SetBackend("")
	if p.Backend() != "" {
		t.Fatalf("Backend() = %q", p.Backend())
	}
}

func TestProxyClosesAConnectionThatWaitedTooLong(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(ln, nil)
	p.HoldTimeout = 200 * time.Millisecond
	go p.Serve()
	defer p.CloseAll()
	start := time.Now()
	c := dial(t, p)
	got, _ := io.ReadAll(c)
	if len(got) != 0 || time.Since(start) < p.HoldTimeout {
		t.Fatalf("read %q after %s; want the end after the hold timeout", got, time.Since(start))
	}
}

func TestProxyRetriesTheDialWhileTheChildBinds(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p := startProxy(t)
	p.SetBackend(addr) // a child that has not bound its port yet
	c := dial(t, p)
	answer := make(chan string, 1)
	go func() { answer <- request(t, c, "late") }()
	time.Sleep(300 * time.Millisecond)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	serveBackend(t, ln, echoUpper)
	if got := <-answer; got != "LATE" {
		t.Fatalf("got %q", got)
	}
}

func TestProxyGivesUpOnABackendThatNeverListens(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(ln, nil)
	p.DialTimeout = 300 * time.Millisecond
	go p.Serve()
	defer p.CloseAll()
	p.SetBackend("127.0.0.1:" + strconv.Itoa(port))
	start := time.Now()
	c := dial(t, p)
	if got, _ := io.ReadAll(c); len(got) != 0 {
		t.Fatalf("read %q", got)
	}
	if d := time.Since(start); d < p.DialTimeout {
		t.Fatalf("closed after %s, before the dial timeout", d)
	}
	if n := p.Open("127.0.0.1:" + strconv.Itoa(port)); n != 0 {
		t.Fatalf("Open = %d after the dial gave up", n)
	}
}

func TestProxyDialRetryFollowsANewBackend(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t)
	dead := "127.0.0.1:" + strconv.Itoa(port)
	p.SetBackend(dead) // a child that died before it bound its port
	c := dial(t, p)
	answer := make(chan string, 1)
	go func() { answer <- request(t, c, "rerouted") }()
	time.Sleep(100 * time.Millisecond)
	p.SetBackend(startBackend(t, echoUpper).addr())
	if got := <-answer; got != "REROUTED" {
		t.Fatalf("got %q", got)
	}
}

func TestProxyPassesABackendResetOn(t *testing.T) {
	b := startBackend(t, func(c net.Conn) {
		// Only once the client is surely connected: a reset before would
		// fail its connect instead.
		c.Read(make([]byte, 1))
		io.WriteString(c, "partial")
		c.(*net.TCPConn).SetLinger(0)
	})
	p := startProxy(t)
	p.SetBackend(b.addr())
	c := dial(t, p)
	io.WriteString(c, "?")
	_, err := io.ReadAll(c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read ended with %v, want a reset: a truncated answer must not look complete", err)
	}
}

func TestProxyCloseKeepsOpenConnectionsCloseAllEndsThem(t *testing.T) {
	b := startBackend(t, namedLines("child"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(ln, nil)
	served := make(chan error, 1)
	go func() { served <- p.Serve() }()
	p.SetBackend(b.addr())
	c := dial(t, p)
	r := bufio.NewReader(c)
	line(t, c, r, "before")

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if got := line(t, c, r, "after Close"); got != "child after Close" {
		t.Fatalf("open connection after Close: %q", got)
	}
	if c2, err := net.DialTimeout("tcp", p.Addr().String(), time.Second); err == nil {
		c2.Close()
		t.Fatal("a new connection was accepted after Close")
	}
	p.CloseAll()
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection still open after CloseAll")
	}
	if n := p.Open(b.addr()); n != 0 {
		t.Fatalf("Open = %d after CloseAll", n)
	}
}

func TestProxyCloseAllEndsWaitingConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(ln, nil)
	go p.Serve()
	c := dial(t, p)
	io.WriteString(c, "x") // so the proxy surely has the connection
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() { p.CloseAll(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("CloseAll waits for a connection that waits for a backend")
	}
	if got, _ := io.ReadAll(c); len(got) != 0 {
		t.Fatalf("read %q", got)
	}
}

func TestProxyLeaksNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		b := startBackend(t, echoUpper)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := NewProxy(ln, nil)
		p.DialTimeout = time.Second // long enough for a loaded machine, short for the failed dial below
		served := make(chan error, 1)
		go func() { served <- p.Serve() }()

		p.SetBackend(b.addr())
		for i := range 50 {
			if got := request(t, dial(t, p), "x"+strconv.Itoa(i)); got != "X"+strconv.Itoa(i) {
				t.Fatalf("got %q", got)
			}
		}
		// Connections that end every other way: a failed dial, a client that
		// leaves early, one left open for CloseAll, one held for a backend.
		port, _ := FreePort()
		p.SetBackend("127.0.0.1:" + strconv.Itoa(port))
		io.ReadAll(dial(t, p))
		p.SetBackend(b.addr())
		dial(t, p).Close()
		open := dial(t, p)
		io.WriteString(open, "left open")
		p.SetBackend("")
		io.WriteString(dial(t, p), "held")
		time.Sleep(100 * time.Millisecond)
		p.CloseAll()
		<-served
		b.close()
	}()
	waitGoroutines(t, before)
}

func TestProxyThousandConcurrentConnections(t *testing.T) {
	const n = 1000
	b := startBackend(t, echoUpper)
	p := startProxy(t)
	p.SetBackend(b.addr())
	before := runtime.NumGoroutine()

	// All n connections are open at once before any of them is answered.
	var opened, wg sync.WaitGroup
	opened.Add(n)
	release := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", p.Addr().String())
			opened.Done()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			body := fmt.Sprintf("connection %d %s", i, bytes.Repeat([]byte("y"), 4096))
			if _, err := io.WriteString(c, body); err != nil {
				errs <- err
				return
			}
			<-release
			c.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(c)
			if err != nil {
				errs <- err
				return
			}
			if want := string(bytes.ToUpper([]byte(body))); string(got) != want {
				errs <- fmt.Errorf("connection %d: got %d bytes, want %d", i, len(got), len(want))
			}
		}()
	}
	opened.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for p.Open(b.addr()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.Open(b.addr()); got != n {
		t.Errorf("Open = %d with every connection open, want %d", got, n)
	}
	close(release)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d connections failed", failed, n)
	}
	select {
	case <-p.Drained(b.addr()):
	case <-time.After(30 * time.Second):
		t.Fatalf("Open = %d after every connection ended", p.Open(b.addr()))
	}
	waitGoroutines(t, before)
}
