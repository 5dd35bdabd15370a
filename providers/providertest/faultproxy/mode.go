package faultproxy

import (
	"fmt"
	"time"
)

// Mode is the fault a Proxy injects. The zero Mode is Pass.
//
// An HTTP status and its Retry-After are packed into the integer so that
// every Mode, HTTPStatus ones included, is a plain comparable value:
// p.Mode() == faultproxy.HTTPStatus(503, 0) works, and the four TCP modes are
// constants rather than package variables a test could overwrite.
type Mode uint64

const (
	// Pass forwards bytes both ways, as if the proxy were not there.
	Pass Mode = iota
	// Refuse makes new connections fail with ECONNREFUSED, the way a server
	// that is down does, and closes open ones.
	Refuse
	// Blackhole accepts new connections but carries no byte over them, and
	// silences open ones for good: like a network partition, a client only
	// recovers by timing out and opening a new connection.
	Blackhole
	// Reset resets (TCP RST) new connections and open ones, the way a server
	// that crashed and came back does.
	Reset

	httpKind Mode = 4
)

const (
	kindBits   = 8
	statusBits = 16
	kindMask   = 1<<kindBits - 1
	statusMask = 1<<statusBits - 1
)

// HTTPStatus makes the proxy answer every request itself with status code and
// a small JSON error body, without contacting the server, to exercise a
// client's handling of 5xx and throttling responses. A retryAfter above zero
// is sent as a Retry-After header, rounded up to whole seconds because that
// is all the header can carry. It panics if code is not a 3-digit status.
func HTTPStatus(code int, retryAfter time.Duration) Mode {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("faultproxy: HTTP status %d is not a 3-digit code", code))
	}
	var secs uint64
	if retryAfter > 0 {
		secs = uint64((retryAfter + time.Second - 1) / time.Second)
	}
	return httpKind | Mode(code)<<kindBits | Mode(secs)<<(kindBits+statusBits)
}

func (m Mode) kind() Mode { return m & kindMask }

func (m Mode) status() int { return int(m >> kindBits & statusMask) }

// retryAfter is in whole seconds, 0 for no header.
func (m Mode) retryAfter() uint64 { return uint64(m >> (kindBits + statusBits)) }

// String names the mode for test failure messages.
func (m Mode) String() string {
	switch m.kind() {
	case Pass:
		return "pass"
	case Refuse:
		return "refuse"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	case httpKind:
		if s := m.retryAfter(); s > 0 {
			return fmt.Sprintf("http %d, retry after %ds", m.status(), s)
		}
		return fmt.Sprintf("http %d", m.status())
	}
	return fmt.Sprintf("faultproxy.Mode(%d)", uint64(m))
}
