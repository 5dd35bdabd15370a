package serve

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// childEnv, set in a test binary's environment, makes it a test child
// instead of running the tests; its value says which.
const childEnv = "SERVE_TEST_CHILD"

// TestMain makes the test binary play secretrun's shim, as main does, and
// the test children.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ShimArg {
		os.Exit(RunShim(os.Args[2:], os.Stderr))
	}
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(testChild(mode))
	}
	os.Exit(m.Run())
}

// testChild is a server that takes its socket by socket activation, as a
// Go server would: it prints what it was given, then answers one
// connection with its name from $SERVE_TEST_NAME.
func testChild(mode string) int {
	switch mode {
	case "listen-fds":
		fmt.Printf("pid=%d LISTEN_PID=%s LISTEN_FDS=%s LISTEN_FDNAMES=%s\n",
			os.Getpid(), os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"))
		ln, err := net.FileListener(os.NewFile(3, "listen"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 1
		}
		fmt.Fprintln(c, os.Getenv("SERVE_TEST_NAME"))
		c.Close()
		return 0
	}
	fmt.Fprintln(os.Stderr, "child: unknown mode", mode)
	return 2
}

// waitGoroutines fails the test unless the number of goroutines comes back
// down to at most want: a leak keeps it up.
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want at most %d:\n%s", n, want, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// errorContains fails unless err is an error whose message has every one of
// parts.
func errorContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one with %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}
