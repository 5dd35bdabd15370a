package serve

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// ListenSpec is one socket of `listen:` in the config.
type ListenSpec struct {
	// Network is "tcp", "tcp4", "tcp6" or "unix" (a stream socket at a
	// filesystem path).
	Network string
	// Address is host:port for TCP, a path for unix.
	Address string
	// Name is the socket's name in LISTEN_FDNAMES. Empty means one made
	// from the address it is bound to, with each ':' made '-'
	// ("127.0.0.1-8080"), since ':' separates names.
	Name string
}

// Validate reports a spec that Listen would refuse before trying it: an
// unknown network, a malformed address, or a name systemd's rules reject
// (printable ASCII without ':', at most 255 characters).
func (s ListenSpec) Validate() error {
	switch s.Network {
	case "tcp", "tcp4", "tcp6":
		_, port, err := net.SplitHostPort(s.Address)
		if err != nil {
			return fmt.Errorf("listen %s %q: want host:port, such as 127.0.0.1:8080", s.Network, s.Address)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("listen %s %q: port %q is not a number from 0 to 65535", s.Network, s.Address, port)
		}
	case "unix":
		if s.Address == "" {
			return errors.New("listen unix: want a socket path")
		}
	default:
		return fmt.Errorf("listen %q %q: the network must be tcp, tcp4, tcp6 or unix", s.Network, s.Address)
	}
	if s.Name != "" {
		if err := validName(s.Name); err != nil {
			return fmt.Errorf("listen %s %s: name %q: %w", s.Network, s.Address, s.Name, err)
		}
	}
	return nil
}

// validName applies systemd's fdname_is_valid.
func validName(name string) error {
	if name == "" || len(name) > 255 {
		return errors.New("must be 1 to 255 characters")
	}
	for _, r := range name {
		if r < ' ' || r > '~' || r == ':' {
			return errors.New("may hold printable ASCII but no ':'")
		}
	}
	return nil
}

// Listener is one socket that secretrun opens once and keeps across
// children, each of which gets it at its place from fd 3 on.
type Listener struct {
	// Name is its name in LISTEN_FDNAMES.
	Name string
	// File is the listening socket. It is close-on-exec in secretrun;
	// starting a child with it among its files clears that in the child.
	File *os.File
	// Addr is the address it is bound to, with the port the system chose
	// when the spec asked for port 0.
	Addr net.Addr
	// Spec is what it was opened from.
	Spec ListenSpec
}

// Files are the listeners' sockets, in order, for the child's descriptors
// 3, 4, ... (exec.Cmd.ExtraFiles).
func Files(ls []Listener) []*os.File {
	out := make([]*os.File, len(ls))
	for i, l := range ls {
		out[i] = l.File
	}
	return out
}

// Env is what every child gets besides its descriptors from 3 on:
// LISTEN_FDS=N and LISTEN_FDNAMES=name:name:... . LISTEN_PID, which must
// be the child's own PID, is set by the shim (see ShimArgs). The caller
// puts these in place of any LISTEN_* that secretrun's own environment
// had. Unsetting them, so that a grandchild does not think the sockets are
// its own, is the child's business (sd_listen_fds(1) does it; a grandchild
// of a careless child sees a LISTEN_PID that is not its own and so takes
// no socket, as the protocol intends).
func Env(ls []Listener) []string {
	if len(ls) == 0 {
		return nil
	}
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.Name
	}
	return []string{
		"LISTEN_FDS=" + strconv.Itoa(len(ls)),
		"LISTEN_FDNAMES=" + strings.Join(names, ":"),
	}
}

// CloseListeners closes every listener, ending the sockets once no child
// holds them any more, and removes the paths of unix sockets.
func CloseListeners(ls []Listener) error {
	var first error
	for _, l := range ls {
		if err := l.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Close closes the socket and, for a unix socket, removes its path.
func (l Listener) Close() error {
	err := l.File.Close()
	if l.Spec.Network == "unix" {
		if rmErr := os.Remove(l.Spec.Address); rmErr != nil && !os.IsNotExist(rmErr) && err == nil {
			err = rmErr
		}
	}
	return err
}
