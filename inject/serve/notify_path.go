//go:build unix && !linux

package serve

import (
	"os"
	"path/filepath"
)

// notifyAddr is a socket in a directory of its own, readable by nobody
// else: only Linux has abstract sockets.
func notifyAddr(name string) (addr string, clean func(), err error) {
	dir, err := os.MkdirTemp("", "secretrun-notify-")
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(dir, "n"), func() { os.RemoveAll(dir) }, nil
}
