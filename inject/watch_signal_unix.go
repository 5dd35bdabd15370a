//go:build unix

package inject

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ParseSignal returns the signal named name, as in "SIGHUP" or "HUP".
func ParseSignal(name string) (os.Signal, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if sig := unix.SignalNum(n); sig != 0 {
		return sig, nil
	}
	return nil, fmt.Errorf("unknown signal %q", name)
}

// signalName names a signal as kill(1) does: SIGHUP.
func signalName(sig os.Signal) string {
	if s, ok := sig.(syscall.Signal); ok {
		if n := unix.SignalName(s); n != "" {
			return n
		}
	}
	if sig == nil {
		return "SIGKILL"
	}
	return sig.String()
}
