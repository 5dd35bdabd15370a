package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

const (
	// DefaultHoldTimeout is how long a connection waits for a backend when
	// there is none.
	DefaultHoldTimeout = 30 * time.Second
	// DefaultDialTimeout is how long a connection keeps trying to reach
	// its backend: a child that was just started may not have bound its
	// port yet.
	DefaultDialTimeout = 5 * time.Second

	firstRetry = 5 * time.Millisecond
	maxRetry   = 100 * time.Millisecond
	// warnEvery bounds the proxy's warnings to one line a second, so that
	// a dead backend under load does not flood the log.
	warnEvery = time.Second
)

// errStopped ends a connection's wait or dial when CloseAll is called.
var errStopped = errors.New("proxy closed")

// A Proxy accepts connections on its listener and forwards each to the
// current backend, the loopback address of the newest ready child. A
// connection keeps the backend it was given for its whole life, so old
// connections stay on the old child while new ones go to the new. Its
// methods are safe for concurrent use.
//
// Bytes are copied with io.Copy between the two connections, which on Linux
// is splice(2) from socket to socket, and a half-close (FIN) on either side
// is passed on to the other. A connection that breaks (a reset, a write to
// a closed peer) is aborted on both sides, so that neither end mistakes a
// truncated stream for a complete one.
type Proxy struct {
	// HoldTimeout is how long a new connection waits for a backend while
	// there is none (see SetBackend) before it is closed; zero means
	// DefaultHoldTimeout. Set it before Serve.
	HoldTimeout time.Duration
	// DialTimeout is how long a connection keeps retrying to connect to
	// its backend before it is closed; zero means DefaultDialTimeout. Set
	// it before Serve.
	DialTimeout time.Duration

	ln     net.Listener
	log    *slog.Logger
	ctx    context.Context // cancelled by CloseAll: ends waits and dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per accepted connection

	mu         sync.Mutex
	backend    string
	backendSet chan struct{} // closed when a backend is set; then replaced
	open       map[string]int
	drained    map[string][]chan struct{}
	conns      map[net.Conn]struct{}
	closed     bool // no more accepting
	stopped    bool // CloseAll: no more connections at all
	lastWarn   time.Time
	suppressed int
}

// NewProxy returns a Proxy that accepts on ln once Serve is called. It has
// no backend until SetBackend; connections that arrive before then wait.
// log receives the proxy's warnings (a backend that cannot be reached, a
// connection that waited too long); it may be nil.
func NewProxy(ln net.Listener, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Proxy{
		ln:         ln,
		log:        log,
		ctx:        ctx,
		cancel:     cancel,
		backendSet: make(chan struct{}),
		open:       map[string]int{},
		drained:    map[string][]chan struct{}{},
		conns:      map[net.Conn]struct{}{},
	}
}

// Addr is the address the proxy accepts on.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Serve accepts connections until Close or CloseAll, and then returns nil.
// Any other error from the listener ends it with that error, except the
// temporary ones (out of file descriptors), after which it backs off and
// goes on accepting.
func (p *Proxy) Serve() error {
	var backoff time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.isClosed() {
				return nil
			}
			if !temporary(err) {
				return fmt.Errorf("proxy: accept on %s: %w", p.ln.Addr(), err)
			}
			backoff = min(max(2*backoff, firstRetry), time.Second)
			p.warn("proxy: cannot accept a connection; retrying", "listen", p.ln.Addr().String(), "in", backoff, "err", err)
			select {
			case <-time.After(backoff):
			case <-p.ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		if !p.track(c, true) {
			c.Close()
			return nil
		}
		go p.handle(c)
	}
}

// temporary reports whether an accept error may go away by itself.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// SetBackend sends new connections to addr ("127.0.0.1:PORT") from now on;
// connections already open keep theirs. An empty addr means no backend:
// new connections then wait, up to HoldTimeout, for one to be set, instead
// of being refused.
func (p *Proxy) SetBackend(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backend = addr
	if addr != "" {
		close(p.backendSet)
		p.backendSet = make(chan struct{})
	}
}

// Backend is the address new connections go to, or "" when there is none.
func (p *Proxy) Backend() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backend
}

// Open is the number of connections to the backend addr, counting those
// still dialling it: zero means a child at addr has drained.
func (p *Proxy) Open(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open[addr]
}

// Drained returns a channel that is closed once no connection is open to
// addr (at once when none is), for waiting on an old child without
// polling Open.
func (p *Proxy) Drained(addr string) <-chan struct{} {
	ch := make(chan struct{})
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[addr] == 0 {
		close(ch)
	} else {
		p.drained[addr] = append(p.drained[addr], ch)
	}
	return ch
}

// Close stops accepting. Open connections go on until they end, or until
// CloseAll; so do connections still waiting for a backend.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	if err := p.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("proxy: close %s: %w", p.ln.Addr(), err)
	}
	return nil
}

// CloseAll stops accepting, closes every open connection, both the
// client's and the backend's side, and returns once the goroutine of every
// connection has ended.
func (p *Proxy) CloseAll() {
	p.Close()
	p.mu.Lock()
	p.stopped = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	p.cancel()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// track records c for CloseAll, and reports false when CloseAll has
// already run (c must then be closed by the caller). The first connection
// of a pair, the client's, also counts in wg, which CloseAll waits on; wg
// is only added to under mu while not stopped, so no Add races the Wait.
func (p *Proxy) track(c net.Conn, client bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || (client && p.closed) {
		return false
	}
	p.conns[c] = struct{}{}
	if client {
		p.wg.Add(1)
	}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// acquire counts a connection, dialling or open, against addr.
func (p *Proxy) acquire(addr string) {
	p.mu.Lock()
	p.open[addr]++
	p.mu.Unlock()
}

func (p *Proxy) release(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open[addr]--
	if p.open[addr] > 0 {
		return
	}
	delete(p.open, addr)
	for _, ch := range p.drained[addr] {
		close(ch)
	}
	delete(p.drained, addr)
}

// current is the backend for a new connection, or, when there is none, a
// channel closed once there is.
func (p *Proxy) current() (string, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backend, p.backendSet
}

func (p *Proxy) handle(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	addr, backend, err := p.connect()
	if err != nil {
		if !errors.Is(err, errStopped) {
			p.warn("proxy: closing a connection: "+err.Error(), "client", client.RemoteAddr().String())
		}
		return
	}
	defer p.release(addr)
	defer p.untrack(backend)
	if !p.track(backend, false) {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		forward(backend, client)
	}()
	forward(client, backend)
	<-done
}

// connect waits for a backend and dials it, retrying while it refuses. On
// success the connection counts against addr until release(addr).
func (p *Proxy) connect() (addr string, c net.Conn, err error) {
	hold := p.HoldTimeout
	if hold <= 0 {
		hold = DefaultHoldTimeout
	}
	dialFor := p.DialTimeout
	if dialFor <= 0 {
		dialFor = DefaultDialTimeout
	}
	var holdTimer *time.Timer // only made for a connection that has to wait
	defer func() {
		if holdTimer != nil {
			holdTimer.Stop()
		}
	}()
	var dialer net.Dialer
	var deadline time.Time
	var lastErr error
	retry := firstRetry
	for {
		addr, set := p.current()
		if addr == "" {
			if holdTimer == nil {
				holdTimer = time.NewTimer(hold)
			}
			select {
			case <-set:
				deadline = time.Time{} // a fresh dial window for the new backend
				continue
			case <-holdTimer.C:
				return "", nil, fmt.Errorf("no backend after %s", hold)
			case <-p.ctx.Done():
				return "", nil, errStopped
			}
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(dialFor)
		}
		p.acquire(addr)
		ctx, cancel := context.WithDeadline(p.ctx, deadline)
		c, err := dialer.DialContext(ctx, "tcp", addr)
		expired := over(ctx)
		cancel()
		if err == nil {
			return addr, c, nil
		}
		p.release(addr)
		if p.ctx.Err() != nil {
			return "", nil, errStopped
		}
		if !expired || lastErr == nil {
			// A dial cut short by the deadline says less than the
			// refusal before it.
			lastErr = err
		}
		wait := min(retry, time.Until(deadline))
		if wait <= 0 {
			return "", nil, fmt.Errorf("backend %s unreachable for %s: %w", addr, dialFor, lastErr)
		}
		// Each retry asks for the current backend again: if a newer child
		// has been switched in meanwhile, the connection goes there.
		select {
		case <-time.After(wait):
		case <-p.ctx.Done():
			return "", nil, errStopped
		}
		retry = min(2*retry, maxRetry)
	}
}

// forward copies src to dst until src ends, then half-closes dst so that
// its reader sees the end too. On a broken stream both are aborted.
func forward(dst, src net.Conn) {
	// With both ends *net.TCPConn this is dst.ReadFrom(src): splice(2) on
	// Linux, no buffer in user space.
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			if cw.CloseWrite() == nil {
				return
			}
		}
	}
	abort(dst)
	abort(src)
}

// abort closes c with a reset, not a FIN, where it can: the peer learns
// that the stream was cut short.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// warn logs at most one line every warnEvery, counting the lines it left out.
func (p *Proxy) warn(msg string, args ...any) {
	p.mu.Lock()
	now := time.Now()
	if now.Sub(p.lastWarn) < warnEvery {
		p.suppressed++
		p.mu.Unlock()
		return
	}
	p.lastWarn = now
	suppressed := p.suppressed
	p.suppressed = 0
	p.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	p.log.Warn(msg, args...)
}
