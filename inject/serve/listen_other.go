//go:build !unix

package serve

import "errors"

// Listen fails: socket handoff (LISTEN_FDS) is a Unix protocol.
func Listen(specs []ListenSpec) ([]Listener, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	return nil, errors.New("listen: socket handoff (LISTEN_FDS) needs a Unix system; use proxy: instead")
}
