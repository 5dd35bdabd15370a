//go:build linux

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/providers/providertest/faultproxy"
)

// trace builds a slow proxy's log the way faultproxy writes it, with the
// latency testOneWay: each message is given by when the proxy read it.
type trace struct {
	t0     time.Time
	chunks []faultproxy.Chunk
}

const testOneWay = 10 * time.Millisecond

func at(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

func (tr *trace) open(conn int, ms float64) {
	t := tr.t0.Add(at(ms))
	tr.chunks = append(tr.chunks, faultproxy.Chunk{Conn: conn, ToServer: true, Read: t, Sent: t})
}

// up is bytes to the server, read at ms and written on once the
// connection's handshake round trip is over and the latency has passed.
func (tr *trace) up(conn int, ms, openedMS float64) {
	read := tr.t0.Add(at(ms))
	due := read
	if h := tr.t0.Add(at(openedMS) + 2*testOneWay); due.Before(h) {
		due = h
	}
	tr.chunks = append(tr.chunks, faultproxy.Chunk{Conn: conn, ToServer: true, Read: read, Sent: due.Add(testOneWay), Bytes: 100})
}

func (tr *trace) down(conn int, ms float64) {
	read := tr.t0.Add(at(ms))
	tr.chunks = append(tr.chunks, faultproxy.Chunk{Conn: conn, Read: read, Sent: read.Add(testOneWay), Bytes: 100})
}

func (tr *trace) rounds(endMS float64) int {
	return latencyRoundTrips(tr.chunks, testOneWay, tr.t0.Add(at(endMS)))
}

func TestLatencyRoundTrips(t *testing.T) {
	t0 := time.Now()
	t.Run("one request on a new connection", func(t *testing.T) {
		tr := &trace{t0: t0}
		tr.open(1, 0)
		tr.up(1, 0, 0) // written at 30: the handshake took 0–20
		tr.down(1, 31) // answered at 41
		if n := tr.rounds(42); n != 2 {
			t.Errorf("%d round trips, want 2: the TCP handshake and the request", n)
		}
	})
	t.Run("TLS 1.3 with HTTP/2, an acknowledgement and close_notify last", func(t *testing.T) {
		tr := &trace{t0: t0}
		tr.open(1, 0)
		tr.up(1, 0, 0)    // ClientHello, written at 30
		tr.down(1, 31)    // ServerHello … Finished, at the client at 41
		tr.up(1, 41, 0)   // Finished, preface, SETTINGS, HEADERS: at the server at 51
		tr.down(1, 51.5)  // SETTINGS, at the client at 61.5
		tr.down(1, 52)    // the response, at 62
		tr.up(1, 61.5, 0) // SETTINGS ack: no answer expected
		tr.up(1, 62.5, 0) // close_notify, as the tool exits
		tr.down(1, 72.6)  // the server's close_notify, after the tool is gone
		if n := tr.rounds(63); n != 3 {
			t.Errorf("%d round trips, want 3: TCP, TLS and the request", n)
		}
	})
	t.Run("two requests side by side on two connections", func(t *testing.T) {
		tr := &trace{t0: t0}
		tr.open(1, 0)
		tr.open(2, 0.2)
		tr.up(1, 0, 0)
		tr.up(2, 0.3, 0.2)
		tr.down(1, 31)
		tr.down(2, 31.5)
		if n := tr.rounds(42); n != 2 {
			t.Errorf("%d round trips, want 2", n)
		}
	})
	t.Run("a lookup, then the read it decides", func(t *testing.T) {
		tr := &trace{t0: t0}
		tr.open(1, 0)
		tr.up(1, 0, 0)
		tr.down(1, 31)  // lookup answered at 41
		tr.up(1, 41, 0) // the read, at the server at 51
		tr.down(1, 52)  // answered at 62
		if n := tr.rounds(63); n != 3 {
			t.Errorf("%d round trips, want 3", n)
		}
	})
	t.Run("a slow server's answer crossing a later message", func(t *testing.T) {
		// The server takes 25 ms over the request; meanwhile the client
		// sends a second message it expects no answer to.
		tr := &trace{t0: t0}
		tr.open(1, 0)
		tr.up(1, 0, 0)  // at the server at 30
		tr.up(1, 21, 0) // at the server at 31
		tr.down(1, 55)  // at the client at 65
		if n := tr.rounds(66); n != 2 {
			t.Errorf("%d round trips, want 2", n)
		}
	})
	t.Run("an answer after the tool exited", func(t *testing.T) {
		tr := &trace{t0: t0}
		tr.open(1, 0)
		tr.up(1, 0, 0)
		tr.down(1, 31) // at the client at 41
		if n := tr.rounds(40); n != 1 {
			t.Errorf("%d round trips, want 1: only the handshake was answered in time", n)
		}
	})
}

func TestParseStrace(t *testing.T) {
	const home = "/tmp/probe-home"
	trace := strings.Join([]string{
		`101 openat(AT_FDCWD, "/etc/ssl/certs/ca-certificates.crt", O_RDONLY|O_CLOEXEC) = 3`,
		`101 connect(3, {sa_family=AF_INET, sin_port=htons(8200), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress)`,
		`102 connect(5, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("169.254.169.254")}, 16) = -1 EINPROGRESS (Operation now in progress)`,
		`102 connect(6, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0`,
		`102 connect(7, {sa_family=AF_UNIX, sun_path="/run/user/0/bus"}, 110) = 0`,
		`101 openat(AT_FDCWD, "/tmp/probe-home/.aws/config", O_RDONLY|O_CLOEXEC) = 4`,
		`101 newfstatat(AT_FDCWD, "/tmp/probe-home/.aws/sso/cache", 0xc000, 0) = -1 ENOENT (No such file or directory)`,
		`101 connect(3, {sa_family=AF_INET, sin_port=htons(8200), sin_addr=inet_addr("127.0.0.1")}, 16) = 0`,
	}, "\n")
	connects, files := parseStrace(trace, home, map[string]string{"127.0.0.1:8200": "Vault"})
	want := []string{"127.0.0.1:8200 (Vault)", "169.254.169.254:80 (**not loopback**)", "[::1]:443", `unix "/run/user/0/bus"`}
	if strings.Join(connects, "; ") != strings.Join(want, "; ") {
		t.Errorf("connects = %q, want %q", connects, want)
	}
	wantFiles := []string{"`openat` ~/.aws/config (found)", "`newfstatat` ~/.aws/sso/cache (ENOENT)"}
	if strings.Join(files, "; ") != strings.Join(wantFiles, "; ") {
		t.Errorf("files = %q, want %q", files, wantFiles)
	}
}
