// Package faultproxy is a TCP proxy for tests. It sits between a client and a
// real server (Vault, moto, an httptest server) and can be switched while a
// test runs to refuse, black-hole or reset connections, or to answer HTTP
// requests with an error status, so the test can check what secretrun does
// when its secret store misbehaves. With SetLatency it stands for a distant
// server instead: every byte takes time to cross, and the proxy keeps a log
// of what crossed when, from which round trips can be counted.
package faultproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

const (
	// dialTimeout bounds the dial to the server; Close abandons it sooner.
	dialTimeout = 5 * time.Second
	// rebindTimeout bounds how long Set waits to listen on the port again
	// after Refuse.
	rebindTimeout = 2 * time.Second
)

// A Proxy forwards connections from its own loopback address to a target
// server, injecting the fault of its current Mode. Its methods are safe for
// concurrent use.
type Proxy struct {
	target string
	addr   string
	ctx    context.Context // cancelled by Close, to abandon dials to target
	cancel context.CancelFunc
	wg     sync.WaitGroup // accept loops and connections

	mu       sync.Mutex
	mode     Mode
	ln       net.Listener // nil while refusing and after Close
	conns    map[*conn]struct{}
	accepted int
	injected int
	latency  time.Duration
	chunks   []Chunk
	closed   bool
	err      error // what went wrong in the background, for Close to report
}

// Start starts a Proxy to target ("127.0.0.1:PORT") in Pass mode and closes it
// when the test ends, failing the test if the proxy broke on the way.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// New is Start for code without a testing.TB, such as a benchmark harness; the
// caller must Close the proxy.
func New(target string) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		target: target,
		addr:   ln.Addr().String(),
		ctx:    ctx,
		cancel: cancel,
		ln:     ln,
		conns:  make(map[*conn]struct{}),
	}
	p.wg.Add(1)
	go p.accept(ln)
	return p, nil
}

// Addr is the proxy's "127.0.0.1:PORT", for clients to dial instead of the
// server's. It stays the same for the proxy's lifetime, Refuse included.
func (p *Proxy) Addr() string { return p.addr }

// URL is "http://" + Addr, for HTTP clients.
func (p *Proxy) URL() string { return "http://" + p.addr }

// Mode reports the mode last Set.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Connections reports how many connections the proxy has accepted, so a test
// can tell a reused keep-alive connection from a new one.
func (p *Proxy) Connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Injected reports how many requests the proxy has answered itself in an
// HTTPStatus mode.
func (p *Proxy) Injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected
}

// Set switches the proxy to m. New connections get m as soon as Set returns.
// Open connections are closed by Refuse and reset by Reset; Blackhole
// silences them for good, so a later Pass does not revive them; an HTTPStatus
// mode answers the next request on them. Open connections that were answering
// HTTP requests are closed on Pass, and clients reconnect.
//
// Leaving Refuse listens on the same port again. If that fails, new
// connections stay refused and Close reports the error.
func (p *Proxy) Set(m Mode) {
	if m > Reset && (m.kind() != httpKind || m.status() < 100 || m.status() > 999) {
		panic(fmt.Sprintf("faultproxy: Set(%d): not a Mode from this package", uint64(m)))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	if p.closed {
		return
	}
	switch {
	case m == Refuse && p.ln != nil:
		p.ln.Close()
		p.ln = nil
	case m != Refuse && p.ln == nil:
		p.listenAgain()
	}
	for c := range p.conns {
		c.apply(m)
	}
}

// listenAgain listens on the proxy's port after Refuse released it. Go sets
// SO_REUSEADDR, so closed connections in TIME_WAIT on the port do not block
// the bind; retrying covers a dial elsewhere that briefly took the free port
// as its local one. The caller holds p.mu.
func (p *Proxy) listenAgain() {
	deadline := time.Now().Add(rebindTimeout)
	for {
		ln, err := net.Listen("tcp", p.addr)
		if err == nil {
			p.ln = ln
			p.wg.Add(1)
			go p.accept(ln)
			return
		}
		if time.Now().After(deadline) {
			p.err = errors.Join(p.err, fmt.Errorf("faultproxy: listen again after refuse: %w", err))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Close stops the proxy, closes every connection, black-holed ones included,
// and waits for its goroutines to end. It reports a failure to listen again
// after Refuse or to accept. Close may be called more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.cancel()
		if p.ln != nil {
			p.ln.Close()
			p.ln = nil
		}
		for c := range p.conns {
			c.end(false)
		}
	}
	err := p.err
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			p.mu.Lock()
			if p.ln == ln { // neither Set nor Close closed it
				p.err = errors.Join(p.err, fmt.Errorf("faultproxy: %w", err))
				ln.Close()
				p.ln = nil
			}
			p.mu.Unlock()
			return
		}
		p.admit(nc)
	}
}

func (p *Proxy) admit(nc net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		nc.Close()
		return
	}
	p.accepted++
	c := &conn{client: nc, id: p.accepted, latency: p.latency, opened: time.Now()}
	if c.latency > 0 {
		p.chunks = append(p.chunks, Chunk{Conn: c.id, ToServer: true, Read: c.opened, Sent: c.opened})
	}
	switch p.mode.kind() {
	case Pass:
		c.phase = forwarding
	case httpKind:
		c.phase = answering
	case Blackhole:
		c.phase = silenced
	case Reset:
		resetConn(nc)
		return
	case Refuse:
		// Accepted just before Set closed the listener. The kernel resets
		// connections still queued on a closed listener; do the same.
		resetConn(nc)
		return
	}
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	go p.serve(c)
}

// phase is what a connection is doing. Set moves connections between phases,
// so that its effect on open connections is decided when it is called, not
// when a connection's goroutine gets round to looking at the mode.
type phase int

const (
	forwarding phase = iota
	answering        // parsing HTTP requests and answering them with a status
	silenced         // black-holed, for good
	ended
)

type conn struct {
	client  net.Conn
	id      int           // its number, from 1 in the order accepted
	latency time.Duration // one way, fixed when it was accepted
	opened  time.Time
	// The fields below are guarded by Proxy.mu.
	upstream net.Conn // nil until forwarding has dialled the server
	phase    phase
	// unsent is what the client sent that forwarding read but could not
	// pass on because Set moved the connection on; the next phase reads it
	// first. Written by forwarding, read after it has returned.
	unsent []byte
}

// apply makes an open connection follow a new mode; the caller holds
// Proxy.mu.
func (c *conn) apply(m Mode) {
	switch m.kind() {
	case Pass:
		if c.phase == answering {
			c.end(false)
		}
	case Refuse:
		c.end(false)
	case Reset:
		c.end(true)
	case Blackhole:
		if c.phase == forwarding || c.phase == answering {
			c.phase = silenced
			c.interrupt()
		}
	case httpKind:
		if c.phase == forwarding {
			c.phase = answering
			c.interrupt()
		}
	}
}

// interrupt makes the connection's blocked reads and writes return, so its
// goroutine notices the new phase. The caller holds Proxy.mu.
func (c *conn) interrupt() {
	past := time.Unix(1, 0)
	c.client.SetDeadline(past)
	if c.upstream != nil {
		c.upstream.SetDeadline(past)
	}
}

// end closes both sides of the connection; with reset the client gets an RST
// rather than a FIN. The caller holds Proxy.mu.
func (c *conn) end(reset bool) {
	if c.phase == ended {
		return
	}
	c.phase = ended
	if reset {
		resetConn(c.client)
	} else {
		c.client.Close()
	}
	if c.upstream != nil {
		c.upstream.Close()
	}
}

func resetConn(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetLinger(0) // Close then sends an RST
	}
	nc.Close()
}

func (p *Proxy) phaseOf(c *conn) phase {
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.phase
}

// serve runs the connection through its phases. Each phase returns when Set
// moved the connection on, or when the connection is over.
func (p *Proxy) serve(c *conn) {
	defer p.wg.Done()
	var br *bufio.Reader
	for {
		ph := p.phaseOf(c)
		switch ph {
		case forwarding:
			p.forward(c)
		case answering:
			if br == nil {
				br = bufio.NewReader(io.MultiReader(bytes.NewReader(c.unsent), c.client))
			}
			p.answer(c, br)
		case silenced:
			hold(c)
		case ended:
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		if c.phase == ph {
			c.end(false)
		}
		p.mu.Unlock()
	}
}

// forward dials the server and copies bytes both ways until both directions
// end, one breaks, or Set interrupts them.
func (p *Proxy) forward(c *conn) {
	up, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(p.ctx, "tcp", p.target)
	p.mu.Lock()
	switch {
	case err != nil:
		// Pass the unreachable server on as a reset: a clean EOF would look
		// like an idle keep-alive connection closed by the server.
		if c.phase == forwarding {
			c.end(true)
		}
		p.mu.Unlock()
		return
	case c.phase != forwarding:
		p.mu.Unlock()
		up.Close()
		return
	}
	c.upstream = up
	p.mu.Unlock()

	errc := make(chan error, 2)
	if c.latency > 0 {
		go func() { errc <- p.delayedPipe(c, up, c.client, true) }()
		go func() { errc <- p.delayedPipe(c, c.client, up, false) }()
	} else {
		go func() { errc <- forwardClient(c, up) }()
		go func() { errc <- pipe(c.client, up) }()
	}
	for range 2 {
		err := <-errc
		// A deadline error is Set's interrupt: no other deadline is set.
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			p.mu.Lock()
			c.end(false) // so that the other direction stops too
			p.mu.Unlock()
		}
	}
}

// forwardClient copies what the client sends to the server, as pipe does,
// but keeps in c.unsent what it read and could not write. A read that Set's
// interrupt races with can still return bytes the client sent after Set
// (the runtime may see them arrive before it sees the deadline), and the
// write to the server then fails on the same deadline: without them the
// answering phase would wait for a request the client has already sent.
func forwardClient(c *conn, up net.Conn) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			w, werr := up.Write(buf[:n])
			if werr != nil {
				c.unsent = append(c.unsent, buf[w:n]...)
				return werr
			}
		}
		if err == io.EOF {
			if tc, ok := up.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// pipe copies src to dst. When src ends cleanly it half-closes dst, as the
// peer would have seen without the proxy in between.
func pipe(dst, src net.Conn) error {
	_, err := io.Copy(dst, src)
	if err == nil {
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}
	return err
}

// answer reads HTTP requests and answers each with the proxy's HTTP status,
// keeping the connection alive when the request allows it.
func (p *Proxy) answer(c *conn, br *bufio.Reader) {
	bw := bufio.NewWriter(c.client)
	for {
		// Clear the deadline that moved the connection here before looking
		// at the phase: a later Set is then either seen below or interrupts
		// the read.
		c.client.SetDeadline(time.Time{})
		p.mu.Lock()
		ph := c.phase
		p.mu.Unlock()
		if ph != answering {
			return
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Header.Get("Expect") == "100-continue" && req.ProtoAtLeast(1, 1) {
			// The client holds the body back until told to go on.
			bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if bw.Flush() != nil {
				return
			}
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		p.mu.Lock()
		ph, m := c.phase, p.mode
		if ph == answering {
			p.injected++
		}
		p.mu.Unlock()
		if ph != answering {
			return // black-holed since the request arrived: it gets no answer
		}
		if writeStatus(bw, req, m) != nil || req.Close {
			return
		}
	}
}

func writeStatus(w *bufio.Writer, req *http.Request, m Mode) error {
	msg := fmt.Sprintf("fault proxy: injected %d", m.status())
	// Both Vault's ({"errors": [...]}) and AWS's ({"message": ...}) error
	// shapes, so either client finds its message.
	body, err := json.Marshal(struct {
		Errors  []string `json:"errors"`
		Message string   `json:"message"`
	}{[]string{msg}, msg})
	if err != nil {
		return err
	}
	resp := &http.Response{
		StatusCode:    m.status(),
		ProtoMajor:    1,
		ProtoMinor:    1,
		Request:       req,
		Header:        http.Header{"Content-Type": {"application/json"}},
		ContentLength: int64(len(body)),
		Body:          io.NopCloser(bytes.NewReader(body)),
		Close:         req.Close,
	}
	if s := m.retryAfter(); s > 0 {
		resp.Header.Set("Retry-After", strconv.FormatUint(s, 10))
	}
	if err := resp.Write(w); err != nil {
		return err
	}
	return w.Flush()
}

// hold keeps a black-holed connection open, carrying nothing, until the
// client gives up. What the client sends is read only to notice that.
func hold(c *conn) {
	c.client.SetDeadline(time.Time{})
	io.Copy(io.Discard, c.client)
}
