//go:build !unix

package serve

import (
	"errors"
	"fmt"
	"io"
)

var errNoShim = errors.New("socket handoff (LISTEN_FDS) needs a Unix system; use proxy: instead")

// ShimArgs fails: socket handoff is a Unix protocol.
func ShimArgs(args []string) (path string, argv []string, err error) {
	return "", nil, errNoShim
}

// RunShim fails with status 126: socket handoff is a Unix protocol.
func RunShim(args []string, stderr io.Writer) int {
	fmt.Fprintf(stderr, "secretrun: %v\n", errNoShim)
	return 126
}
