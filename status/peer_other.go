//go:build !linux && !darwin

package status

import (
	"errors"
	"net"
	"os"
)

// peerUID cannot tell who is at the other end here, so nobody is answered.
func peerUID(*net.UnixConn) (int, error) {
	return 0, errors.New("status: peer credentials are not available on this system")
}

func ownedByMe(os.FileInfo) bool { return true }
