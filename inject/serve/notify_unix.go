//go:build unix

package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
)

// notifyMax is the longest datagram read, as systemd's NOTIFY_BUFFER_MAX;
// longer ones are ignored, as systemd ignores them.
const notifyMax = 4096

// Notify is one child's notify socket, the receiving end of the sd_notify
// protocol: the child finds its address in $NOTIFY_SOCKET and sends
// datagrams of newline-separated assignments. Notify recognises READY=1
// and ignores every other assignment (STATUS=, WATCHDOG=, MAINPID=, ...)
// and any descriptors sent along (FDSTORE=1), which the kernel closes.
//
// On Linux the socket is in the abstract namespace ("@secretrun-notify-"
// and 128 random bits), so nothing touches the filesystem. Like systemd's
// NotifyAccess=all, messages are accepted from any sender, not only the
// child's own PID, so a server whose process manager (gunicorn, a shell
// script) forks the process that sends READY=1 works. Any local process
// in the same network namespace can find the name in /proc/net/unix and
// send to it; the most it can do is mark the child ready early.
type Notify struct {
	conn  *net.UnixConn
	addr  string
	ready chan struct{} // closed on READY=1
	done  chan struct{} // closed when the reader stops
	once  sync.Once
	err   error // why the reader stopped, set before done is closed
	clean func()
}

// NewNotify opens a notify socket for one child.
func NewNotify() (*Notify, error) {
	var random [16]byte
	rand.Read(random[:])
	addr, clean, err := notifyAddr("secretrun-notify-" + hex.EncodeToString(random[:]))
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		clean()
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	n := &Notify{conn: conn, addr: addr, ready: make(chan struct{}), done: make(chan struct{}), clean: clean}
	go n.read()
	return n, nil
}

// Env is the child's NOTIFY_SOCKET variable, "NOTIFY_SOCKET=@...".
func (n *Notify) Env() string { return "NOTIFY_SOCKET=" + n.addr }

// Ready returns a channel that is closed once the child has sent READY=1.
func (n *Notify) Ready() <-chan struct{} { return n.ready }

// Close closes the socket; a child that notifies afterwards gets an error
// (ECONNREFUSED), which sd_notify callers ignore.
func (n *Notify) Close() error {
	err := n.conn.Close()
	<-n.done
	n.clean()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (n *Notify) read() {
	defer close(n.done)
	buf := make([]byte, notifyMax)
	for {
		// No buffer for control messages: descriptors sent along are
		// closed by the kernel rather than landing in secretrun.
		size, _, flags, _, err := n.conn.ReadMsgUnix(buf, nil)
		if err != nil {
			n.err = err
			return
		}
		if flags&syscall.MSG_TRUNC != 0 {
			continue
		}
		for line := range bytes.SplitSeq(buf[:size], []byte("\n")) {
			if string(line) == "READY=1" {
				n.once.Do(func() { close(n.ready) })
			}
		}
	}
}

// wait blocks until READY=1 or ctx ends.
func (n *Notify) wait(ctx context.Context) error {
	select {
	case <-n.ready:
		return nil
	case <-ctx.Done():
		select {
		case <-n.ready:
			return nil
		default:
		}
		return notReady(ctx, "no READY=1 on "+n.addr)
	case <-n.done:
		select {
		case <-n.ready:
			return nil
		default:
		}
		if errors.Is(n.err, net.ErrClosed) {
			return errors.New("not ready: the notify socket was closed")
		}
		return fmt.Errorf("not ready: reading the notify socket: %w", n.err)
	}
}
