package faultproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"time"
)

// A Chunk is what one read from one side of a connection carried to the
// other side while a latency was set.
type Chunk struct {
	// Conn is the connection, numbered from 1 in the order accepted, the
	// count Connections reports.
	Conn int
	// ToServer is the direction: from the client to the server, or back.
	ToServer bool
	// Read is when the proxy read the bytes; Sent is when it wrote them on,
	// at least the latency later. Sent is zero if they were never written.
	Read, Sent time.Time
	// Bytes is how many bytes the read returned. A Chunk of 0 bytes to the
	// server is the connection's opening, logged when it was accepted.
	Bytes int
}

// SetLatency makes the connections accepted from now on slow, as if the
// server were d away each way: every chunk of bytes read from one side is
// written to the other d after it was read, in the order read. A
// connection's bytes to the server also wait for a further 2d after it was
// accepted, the round trip of the TCP handshake a client would have made
// first: the kernel completes the handshake with the proxy at once. d = 0
// turns the delay off for new connections.
//
// The mode still applies on top: a slow connection can be refused, reset or
// black-holed, and bytes still waiting to be written when that happens are
// lost, as they would be in the network. While a latency is set, each
// connection's opening and every chunk are logged for Chunks.
func (p *Proxy) SetLatency(d time.Duration) {
	if d < 0 {
		panic("faultproxy: negative latency")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
}

// Chunks returns the log of what slow connections carried, in the order the
// proxy read it, so that a test can see how many round trips a client made
// and which of them ran at the same time.
func (p *Proxy) Chunks() []Chunk {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.chunks)
}

// delayedPipe copies src to dst as pipe does, each chunk d late. Reading
// goes on while earlier chunks wait, so the delay does not cut throughput
// the way a sleep between reads would.
func (p *Proxy) delayedPipe(c *conn, dst, src net.Conn, toServer bool) error {
	type pending struct {
		b   []byte
		due time.Time
		log int // index in p.chunks
	}
	handshakeDone := c.opened.Add(2 * c.latency)

	queue := make(chan pending, 256)
	written := make(chan error, 1)
	go func() {
		var err error
		for pd := range queue {
			if err != nil {
				continue // drain, so the reader never blocks on a dead writer
			}
			time.Sleep(time.Until(pd.due))
			// Logged before the write: the reader on the other side may
			// look at the log as soon as the bytes arrive.
			p.mu.Lock()
			p.chunks[pd.log].Sent = time.Now()
			p.mu.Unlock()
			_, err = dst.Write(pd.b)
			p.mu.Lock()
			if err != nil {
				p.chunks[pd.log].Sent = time.Time{}
			}
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				// The reader may be blocked on a side that stays open: end
				// both, as pipe's caller does when a copy breaks.
				c.end(false)
			}
			p.mu.Unlock()
		}
		written <- err
	}()

	buf := make([]byte, 32<<10)
	var readErr error
	for {
		n, err := src.Read(buf)
		if n > 0 {
			now := time.Now()
			due := now
			if toServer && due.Before(handshakeDone) {
				due = handshakeDone
			}
			p.mu.Lock()
			p.chunks = append(p.chunks, Chunk{Conn: c.id, ToServer: toServer, Read: now, Bytes: n})
			log := len(p.chunks) - 1
			p.mu.Unlock()
			queue <- pending{b: slices.Clone(buf[:n]), due: due.Add(c.latency), log: log}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
	}
	close(queue)
	writeErr := <-written
	if readErr != nil {
		return readErr
	}
	if writeErr != nil {
		return writeErr
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	return nil
}
