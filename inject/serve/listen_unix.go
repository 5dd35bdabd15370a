//go:build unix

package serve

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// Listen opens every socket of specs, or none: on an error the ones
// already open are closed again. The error names the address and, for the
// usual causes, the fix.
//
// The sockets are left in blocking mode, as systemd passes them. That mode
// belongs to the socket, which every generation of children shares, so a
// child that wants non-blocking accepts sets it itself (Go, Node and
// asyncio servers do); secretrun never changes it afterwards, since doing
// so under a running child could stall that child's accept loop.
func Listen(specs []ListenSpec) ([]Listener, error) {
	var out []Listener
	for _, spec := range specs {
		l, err := listen(spec)
		if err != nil {
			CloseListeners(out)
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func listen(spec ListenSpec) (Listener, error) {
	if err := spec.Validate(); err != nil {
		return Listener{}, err
	}
	ln, err := net.Listen(spec.Network, spec.Address)
	if err != nil {
		return Listener{}, listenError(spec, err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		// The path must outlive this net.Listener, which is closed below
		// once its descriptor is duplicated; Listener.Close removes it.
		ul.SetUnlinkOnClose(false)
	}
	f, err := ln.(interface{ File() (*os.File, error) }).File()
	addr := ln.Addr()
	ln.Close()
	if err != nil {
		return Listener{}, fmt.Errorf("listen %s %s: %w", spec.Network, spec.Address, err)
	}
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return Listener{}, fmt.Errorf("listen %s %s: %w", spec.Network, spec.Address, err)
	}
	name := spec.Name
	if name == "" {
		name = defaultName(addr.String())
	}
	return Listener{Name: name, File: f, Addr: addr, Spec: spec}, nil
}

func listenError(spec ListenSpec, err error) error {
	where := spec.Network + " " + spec.Address
	switch {
	case errors.Is(err, syscall.EADDRINUSE) && spec.Network == "unix":
		return fmt.Errorf("listen %s: the path is in use; remove it if no server is listening there", where)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("listen %s: the address is already in use (is another server or secretrun still running?)", where)
	case errors.Is(err, syscall.EACCES) && spec.Network != "unix":
		return fmt.Errorf("listen %s: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)", where)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("listen %s: no interface of this machine has that address", where)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	return fmt.Errorf("listen %s: %w", where, err)
}

// defaultName is the LISTEN_FDNAMES name of a socket the config gives no
// name: the address it is bound to, with each ':' made '-' and anything
// else a name cannot hold made '_' ("127.0.0.1-8080"). systemd's own
// default is the socket unit's name, which has no equivalent here; a name
// from the address at least tells two sockets apart.
func defaultName(address string) string {
	b := []byte(address)
	for i, c := range b {
		switch {
		case c == ':':
			b[i] = '-'
		case c < ' ' || c > '~':
			b[i] = '_'
		}
	}
	if len(b) > 255 {
		b = b[len(b)-255:]
	}
	return string(b)
}
