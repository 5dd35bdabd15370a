package faultproxy

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

const testLatency = 20 * time.Millisecond

func TestLatencyDelaysEachRoundTrip(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)
	p.SetLatency(testLatency)
	c := newClient(t, 5*time.Second)

	start := time.Now()
	mustGet(t, c, p.URL()+"/first", http.StatusOK)
	// The handshake's round trip, then the request's.
	if d := time.Since(start); d < 4*testLatency {
		t.Errorf("first GET took %s, want at least %s: handshake and request round trips", d, 4*testLatency)
	}
	start = time.Now()
	mustGet(t, c, p.URL()+"/second", http.StatusOK)
	if d := time.Since(start); d < 2*testLatency {
		t.Errorf("GET on the kept-alive connection took %s, want at least %s", d, 2*testLatency)
	}
	if n := p.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1", n)
	}

	chunks := p.Chunks()
	if len(chunks) < 5 || chunks[0].Bytes != 0 || !chunks[0].ToServer {
		t.Fatalf("Chunks() = %+v, want the opening then two requests and two responses", chunks)
	}
	var up, down int
	for _, ch := range chunks[1:] {
		if ch.Conn != 1 {
			t.Errorf("chunk on connection %d, want 1", ch.Conn)
		}
		if ch.Sent.Sub(ch.Read) < testLatency {
			t.Errorf("chunk %+v sent %s after it was read, want at least %s", ch, ch.Sent.Sub(ch.Read), testLatency)
		}
		if ch.ToServer {
			up++
		} else {
			down++
		}
	}
	if up < 2 || down < 2 {
		t.Errorf("%d chunks to the server and %d back, want at least 2 each", up, down)
	}
	if first := chunks[1]; first.Sent.Sub(chunks[0].Read) < 3*testLatency {
		t.Errorf("first request sent %s after the connection opened, want at least %s", first.Sent.Sub(chunks[0].Read), 3*testLatency)
	}
}

// TestLatencyKeepsOrder sends a body larger than one read through a slow
// proxy and back: every chunk is delayed separately, and the bytes must
// still arrive whole and in order.
func TestLatencyKeepsOrder(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}))
	t.Cleanup(srv.Close)
	p := Start(t, srv.Listener.Addr().String())
	p.SetLatency(time.Millisecond)
	c := newClient(t, 10*time.Second)

	body := make([]byte, 1<<20)
	rand.Read(body)
	resp, err := c.Post(p.URL()+"/echo", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("echoed %d bytes, not the %d sent in order", len(got), len(body))
	}
	var chunks int
	for _, ch := range p.Chunks() {
		if ch.Bytes > 0 {
			chunks++
		}
	}
	if chunks < 4 {
		t.Errorf("%d chunks logged for 1 MiB each way, want several", chunks)
	}
}

func TestLatencyCountsConnections(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)
	p.SetLatency(testLatency)

	for i := range 3 {
		mustGet(t, newClient(t, 5*time.Second), p.URL()+"/new-client", http.StatusOK)
		if n := p.Connections(); n != i+1 {
			t.Fatalf("Connections() = %d after %d clients, want %d", n, i+1, i+1)
		}
	}
	seen := map[int]bool{}
	for _, ch := range p.Chunks() {
		seen[ch.Conn] = true
	}
	if len(seen) != 3 {
		t.Errorf("chunks on connections %v, want 1, 2 and 3", seen)
	}

	// Off again: new connections pass at once and are not logged.
	p.SetLatency(0)
	logged := len(p.Chunks())
	mustGet(t, newClient(t, 5*time.Second), p.URL()+"/fast", http.StatusOK)
	if n := len(p.Chunks()); n != logged {
		t.Errorf("%d chunks logged after SetLatency(0), want none", n-logged)
	}
	if n := p.Connections(); n != 4 {
		t.Errorf("Connections() = %d, want 4", n)
	}
}

// TestLatencyThenBlackhole checks that the fault modes still act on slow
// connections.
func TestLatencyThenBlackhole(t *testing.T) {
	t.Parallel()
	b := newBackend(t)
	p := Start(t, b.addr)
	p.SetLatency(testLatency)
	c := newClient(t, blackholeTimeout)
	mustGet(t, c, p.URL()+"/before", http.StatusOK)

	p.Set(Blackhole)
	if _, _, err := get(c, p.URL()+"/lost"); !isTimeout(err) {
		t.Fatalf("GET through a slow black hole: %v, want a timeout", err)
	}
	p.Set(Pass)
	mustGet(t, newClient(t, 5*time.Second), p.URL()+"/after", http.StatusOK)
	if n := b.calls.Load(); n != 2 {
		t.Errorf("backend called %d times, want 2", n)
	}
}
