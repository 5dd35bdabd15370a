//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestRollingScripts runs the zero-downtime scripts in testdata/rolling: an
// HTTP server child (httpchild) behind secretrun's proxy or on sockets it
// hands over, a real Vault whose secret is rotated, and clients that send
// requests all along (load).
func init() { scriptCommands["httpchild"] = httpChild }

func TestRollingScripts(t *testing.T) {
	p := serverScripts(t, "testdata/rolling")
	p.Cmds["load"] = cmdLoad
	p.Cmds["freeport"] = cmdFreePort
	testscript.Run(t, p)
}

// cmdFreePort sets the variable NAME to a free loopback port.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport NAME")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	port := l.Addr().(*net.TCPAddr).Port
	ts.Check(l.Close())
	ts.Setenv(args[0], strconv.Itoa(port))
}

// loadRun is clients sending requests to one URL until stopped.
type loadRun struct {
	stop    chan struct{}
	done    sync.WaitGroup
	mu      sync.Mutex
	total   int
	failed  int
	errs    []string
	order   []string // versions in the order first answered
	seen    map[string]bool
	back    int // answers older than one the same client had before
	started time.Time
}

// cmdLoad drives clients against the child:
//
//	load start URL      five clients (four opening a connection per request,
//	                    one keeping its connection alive), a request every
//	                    5ms each, until stopped
//	load wait VERSION D the clients have been answered VERSION, within D
//	load stop           stop, and write load.txt: requests N, failed N,
//	                    versions v1 v2 ..., backwards N, and the errors
func cmdLoad(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: load start URL | load wait VERSION DURATION | load stop")
	}
	switch args[0] {
	case "start":
		if len(args) != 2 {
			ts.Fatalf("usage: load start URL")
		}
		l := &loadRun{stop: make(chan struct{}), seen: map[string]bool{}, started: time.Now()}
		for i := range 5 {
			keepAlive := i == 0
			l.done.Add(1)
			go l.client(args[1], keepAlive)
		}
		ts.Defer(func() { l.halt() })
		setLoad(ts, l)
	case "wait":
		if len(args) != 3 {
			ts.Fatalf("usage: load wait VERSION DURATION")
		}
		d, err := time.ParseDuration(args[2])
		ts.Check(err)
		l := getLoad(ts)
		start := time.Now()
		for time.Since(start) < d {
			l.mu.Lock()
			ok := l.seen[args[1]]
			l.mu.Unlock()
			if ok {
				ts.Logf("answered %s after %v", args[1], time.Since(start).Round(time.Millisecond))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		ts.Fatalf("no answer with %s within %v", args[1], d)
	case "stop":
		l := getLoad(ts)
		l.halt()
		l.mu.Lock()
		defer l.mu.Unlock()
		report := fmt.Sprintf("requests %d\nfailed %d\nversions %s\nbackwards %d\n", l.total, l.failed, strings.Join(l.order, " "), l.back)
		for _, e := range l.errs {
			report += "error " + e + "\n"
		}
		ts.Logf("load: %d requests in %v, %d failed, versions %v", l.total, time.Since(l.started).Round(time.Millisecond), l.failed, l.order)
		ts.Check(os.WriteFile(ts.MkAbs("load.txt"), []byte(report), 0o644))
	default:
		ts.Fatalf("unknown load command %q", args[0])
	}
}

var loads sync.Map // *testscript.TestScript -> *loadRun

func setLoad(ts *testscript.TestScript, l *loadRun) { loads.Store(ts, l) }

func getLoad(ts *testscript.TestScript) *loadRun {
	l, ok := loads.Load(ts)
	if !ok {
		ts.Fatalf("load start first")
	}
	return l.(*loadRun)
}

func (l *loadRun) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.done.Wait()
}

func (l *loadRun) client(url string, keepAlive bool) {
	defer l.done.Done()
	tr := &http.Transport{DisableKeepAlives: !keepAlive}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	newest := 0
	for {
		select {
		case <-l.stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
		version, err := get(c, url)
		l.mu.Lock()
		l.total++
		switch {
		case err != nil:
			l.failed++
			if len(l.errs) < 5 {
				l.errs = append(l.errs, err.Error())
			}
		default:
			if !l.seen[version] {
				l.seen[version] = true
				l.order = append(l.order, version)
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(version, "v"))
			if n < newest {
				l.back++
			}
			newest = max(newest, n)
		}
		l.mu.Unlock()
	}
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(string(body)), "version=")
	if !ok {
		return "", fmt.Errorf("unexpected answer %q", body)
	}
	return v, nil
}

// httpChild is the child of the rolling scripts: an HTTP server that
// answers GET / with version=$SECRET, refuses to start with SECRET=bad,
// and is ready READY_DELAY after it starts (/healthz answers 200 from then
// on, READY=1 goes to $NOTIFY_SOCKET; with DELAY_LISTEN=1 it only listens
// then). It listens on the sockets of $LISTEN_FDS, checking LISTEN_PID, or
// on 127.0.0.1:$PORT. On SIGTERM it stops keeping connections alive for
// a moment, then shuts down gracefully. It appends to
// $CHILD_LOG one line when it starts and one for its first request, which
// says whether it was ready by then, and writes its parent's PID to
// parent.pid.
func httpChild() {
	secret := os.Getenv("SECRET")
	start := time.Now()
	logLine := func(format string, args ...any) {
		if name := os.Getenv("CHILD_LOG"); name != "" {
			f, err := os.OpenFile(name, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err == nil {
				fmt.Fprintf(f, "pid=%d "+format+"\n", append([]any{os.Getpid()}, args...)...)
				f.Close()
			}
		}
	}
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "httpchild: %v\n", err)
		os.Exit(1)
	}
	if secret == "bad" {
		fail(errors.New("refusing to start with this secret"))
	}
	delay, _ := time.ParseDuration(os.Getenv("READY_DELAY"))
	var lns []net.Listener
	if fds := os.Getenv("LISTEN_FDS"); fds != "" {
		n, err := strconv.Atoi(fds)
		if err != nil {
			fail(err)
		}
		logLine("listen_pid=%s listen_fds=%s listen_fdnames=%s", os.Getenv("LISTEN_PID"), fds, os.Getenv("LISTEN_FDNAMES"))
		if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
			fail(fmt.Errorf("LISTEN_PID=%s is not my pid %d", os.Getenv("LISTEN_PID"), os.Getpid()))
		}
		for fd := 3; fd < 3+n; fd++ {
			ln, err := net.FileListener(os.NewFile(uintptr(fd), "listen"))
			if err != nil {
				fail(err)
			}
			lns = append(lns, ln)
		}
	} else {
		if os.Getenv("DELAY_LISTEN") == "1" {
			time.Sleep(delay)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
		if err != nil {
			fail(err)
		}
		lns = append(lns, ln)
	}
	logLine("started secret=%s port=%s", secret, os.Getenv("PORT"))
	// Scripts signal secretrun, the parent, through this file.
	_ = os.WriteFile("parent.pid", []byte(strconv.Itoa(os.Getppid())), 0o644)
	var ready atomic.Bool
	go func() {
		time.Sleep(delay - time.Since(start))
		ready.Store(true)
		if sock := os.Getenv("NOTIFY_SOCKET"); sock != "" {
			c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
			if err != nil {
				fail(err)
			}
			_, _ = c.Write([]byte("STATUS=up\nREADY=1\n"))
			c.Close()
		}
	}()
	var first sync.Once
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	var draining atomic.Bool
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		first.Do(func() {
			logLine("first-request ready=%v after=%v", ready.Load(), time.Since(start).Round(time.Millisecond))
		})
		fmt.Fprintf(w, "version=%s\n", secret)
	})
	srv := &http.Server{Handler: mux}
	for _, ln := range lns {
		go func() { _ = srv.Serve(ln) }()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	<-sigs
	// Lame duck first, as servers that restart without dropping requests
	// do: no new connection, and answers say Connection: close for a moment, so that clients
	// stop reusing their connections before they are closed. (Server.
	// SetKeepAlivesEnabled would close idle ones at once, racing a
	// client's next request on them.)
	// On shared sockets it stops accepting at once: the new child already
	// accepts there. Its own port (behind the proxy) stays open until
	// Shutdown, so that a connection the proxy opened just before the
	// switch, still in the port's queue, is served and not reset.
	if os.Getenv("LISTEN_FDS") != "" {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	draining.Store(true)
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fail(err)
	}
	os.Exit(0)
}
