package serve

import (
	"fmt"
	"net"
)

// FreePort returns a loopback TCP port that nothing listened on a moment
// ago, for a child's $PORT. Another process may take it before the child
// binds it; the proxy's dial retries and the readiness check then fail the
// rollout rather than send traffic to a stranger for long.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
