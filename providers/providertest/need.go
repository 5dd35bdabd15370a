package providertest

import (
	"net"
	"os"
	"strconv"
	"testing"
)

// Need reports that a test server is unavailable: the test is skipped on a
// developer's machine, and fails under CI=true, where every server must run.
func Need(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v", what, err)
	}
	t.Skipf("%s unavailable (run scripts/test to install and start it): %v", what, err)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	return port
}

// Addr formats a loopback address for port.
func Addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
