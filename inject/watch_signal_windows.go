//go:build windows

package inject

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// windowsSignals are the signal names Go defines on Windows. Only SIGKILL
// can be delivered to another process there; the others make the
// supervisor kill the child when it stops it, and fail in signal mode.
var windowsSignals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT,
	"SIGABRT": syscall.SIGABRT, "SIGKILL": syscall.SIGKILL, "SIGALRM": syscall.SIGALRM,
	"SIGTERM": syscall.SIGTERM, "SIGPIPE": syscall.SIGPIPE,
}

// ParseSignal returns the signal named name, as in "SIGTERM" or "TERM".
func ParseSignal(name string) (os.Signal, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if sig, ok := windowsSignals[n]; ok {
		return sig, nil
	}
	return nil, fmt.Errorf("signal %q does not exist on Windows", name)
}

// signalName names a signal as kill(1) does: SIGTERM.
func signalName(sig os.Signal) string {
	for n, s := range windowsSignals {
		if s == sig {
			return n
		}
	}
	if sig == nil {
		return "SIGKILL"
	}
	return sig.String()
}
