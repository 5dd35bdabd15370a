// Package mask redacts secret values from a byte stream, for
// `secretrun run --mask`: the child's stdout and stderr go through a Writer,
// which replaces each value, and its base64, URL-escaped and JSON-escaped
// forms, with Mask before passing the output on.
//
// A value is caught even when the child writes it in pieces, so the Writer
// holds back a trailing run of bytes that could be the start of a value until
// the next write tells, or until the stream has been idle for a short time,
// so a prompt printed without a newline still reaches the user.
//
// Values shorter than MinLen bytes are not masked: they would match too much
// ordinary output. Output is masked as a whole; the same input gives the
// same output however it is split into writes, unless the idle flush had to
// let a partial match through. A value that contains Mask's '*' can be
// recreated next to a mask and is the one kind the Writer cannot keep out of
// its output.
package mask

import (
	"errors"
	"io"
	"sync"
	"time"
)

const (
	// Mask replaces each masked occurrence.
	Mask = "*****"
	// MinLen is the length in bytes of the shortest value that is masked.
	MinLen = 4
	// DefaultIdleFlush is how long a partial match is held back when
	// Options.IdleFlush is zero.
	DefaultIdleFlush = 50 * time.Millisecond
)

// maxOpenSpan bounds how much masked output may wait for an overlapping
// match to extend it.
const maxOpenSpan = 64 << 10

// Options tune a Writer. The zero value is ready to use.
type Options struct {
	// IdleFlush is how long the Writer holds bytes that could begin a
	// value before it writes them anyway, once no more writes arrive.
	// Zero means DefaultIdleFlush; a negative value holds them until the
	// next Write or Close.
	IdleFlush time.Duration
}

// errClosed is returned by Write after Close.
var errClosed = errors.New("mask: write after close")

// Writer is an io.WriteCloser that writes everything written to it to its
// destination, with the values it was given masked. Its methods may be
// called from several goroutines; its idle timer writes to the destination
// from a goroutine of its own, never at the same time as Write or Close.
type Writer struct {
	mu      sync.Mutex
	dst     io.Writer
	m       *matcher // nil when there is nothing to mask
	skipped []int
	idle    time.Duration

	// buf holds the bytes not yet written out and those a match in
	// progress may still cover. Positions count from the start of buf, or
	// of the write being scanned in place: before out everything was
	// written out, and scan is the first position where it is not yet
	// decided whether a value starts.
	buf   []byte
	out   int
	scan  int
	spans spans
	obuf  []byte // assembles output that has masks in it into one Write

	err    error // sticky error from dst
	closed bool

	timer      *time.Timer
	timerArmed bool
	lastWrite  time.Time
}

// New returns a Writer that masks values in everything written to dst.
// Empty values are ignored; values shorter than MinLen bytes are not masked
// and are reported by Skipped. The Writer keeps the values in memory and
// never reveals them other than by writing what it is given.
func New(dst io.Writer, values []string, opts Options) *Writer {
	pats, skipped := patterns(values)
	w := &Writer{dst: dst, skipped: skipped, idle: opts.IdleFlush}
	if w.idle == 0 {
		w.idle = DefaultIdleFlush
	}
	if len(pats) > 0 {
		w.m = newMatcher(pats)
	}
	return w
}

// String and GoString keep fmt from printing the held bytes, which may be
// the start of a value.
func (w *Writer) String() string { return "mask.Writer" }

// GoString is String for %#v.
func (w *Writer) GoString() string { return "mask.Writer" }

// Skipped returns the indices, into the values given to New, of the values
// that are too short to be masked, so the caller can warn without naming
// them. Empty values are not included.
func (w *Writer) Skipped() []int {
	return append([]int(nil), w.skipped...)
}

// Write masks and writes p. It may hold back a tail of p that could begin a
// value until later writes, the idle flush or Close decide. An error from
// the destination is returned by this and every later Write.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, errClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.m == nil {
		n, err := w.dst.Write(p)
		w.err = err
		return n, err
	}
	w.process(p)
	if w.err != nil {
		return 0, w.err
	}
	if w.idle > 0 {
		w.lastWrite = time.Now()
		if len(w.buf) > w.out {
			w.armTimer()
		}
	}
	return len(p), nil
}

// Close writes out everything held back, masked. It does not close the
// destination. Writes after Close fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.m != nil && w.err == nil {
		w.scan = w.m.scan(w.buf, w.scan, true, &w.spans, w.out)
		w.emit(w.buf, true)
	}
	w.buf, w.obuf, w.spans = nil, nil, nil
	return w.err
}

// process scans and writes out p, which follows the bytes in buf, and
// leaves in buf what is not decided yet.
//
// Copying every write into buf would cost as much as the copy from the
// child's pipe, so p is scanned where it is, and only the undecided tail
// is kept. When buf still holds the tail of the previous write, enough of
// p is appended to it to decide every position in it, and the rest of p is
// then scanned in place.
func (w *Writer) process(p []byte) {
	if len(w.buf) > 0 {
		junction := w.m.maxLen
		if len(p) <= junction {
			w.buf = append(w.buf, p...)
			w.step(w.buf)
			w.keep(w.buf)
			return
		}
		held := len(w.buf)
		w.buf = append(w.buf, p[:junction]...)
		w.step(w.buf)
		if w.out < held {
			// A mask that began in buf may still grow into p; rare
			// enough to take the plain way.
			w.buf = append(w.buf, p[junction:]...)
			w.step(w.buf)
			w.keep(w.buf)
			return
		}
		// Every position in buf is decided and written out: go on in p.
		w.shift(held)
		w.buf = w.buf[:0]
	}
	w.step(p)
	w.keep(p)
}

// step scans data, which holds the undecided bytes, and writes out what it
// can.
func (w *Writer) step(data []byte) {
	w.scan = w.m.scan(data, w.scan, false, &w.spans, w.out)
	w.emit(data, false)
}

// keep leaves in buf the part of data that was not written out or may
// still be part of a match.
func (w *Writer) keep(data []byte) {
	d := min(w.out, w.scan)
	// data may be buf itself; append copies with memmove, which allows
	// the overlap.
	w.buf = append(w.buf[:0], data[d:]...)
	w.shift(d)
}

// shift renumbers the positions after dropping the first d bytes.
func (w *Writer) shift(d int) {
	if d == 0 {
		return
	}
	w.out -= d
	w.scan -= d
	for i := range w.spans {
		w.spans[i].start -= d
		w.spans[i].end -= d
	}
}

// emit writes out the bytes of data that are decided: those before the
// first position where a value may still begin and before any mask that may
// still grow. With force it writes out everything, masking what has matched
// so far; scan stays where it is, so a value completed later is still masked
// from where the output left off.
func (w *Writer) emit(data []byte, force bool) {
	limit := w.scan
	if force {
		limit = len(data)
	} else if k := len(w.spans); k > 0 && w.spans[k-1].end > w.scan {
		limit = w.spans[k-1].start
		// Output like "abababab..." for the value "abababab" would grow
		// one mask without end and hold everything back; cut it into
		// several masks instead.
		if w.spans[k-1].end-limit >= maxOpenSpan {
			limit = w.spans[k-1].end
		}
	}
	if limit <= w.out {
		return
	}
	var done int
	for _, s := range w.spans {
		if s.start >= limit {
			break
		}
		w.obuf = append(w.obuf, data[w.out:s.start]...)
		w.obuf = append(w.obuf, Mask...)
		w.out = s.end
		done++
	}
	w.spans = append(w.spans[:0], w.spans[done:]...)
	if len(w.obuf) == 0 {
		// The common case, no mask: write straight from data.
		w.write(data[w.out:limit])
	} else {
		if limit > w.out {
			w.obuf = append(w.obuf, data[w.out:limit]...)
		}
		w.write(w.obuf)
		w.obuf = w.obuf[:0]
	}
	w.out = max(w.out, limit)
}

func (w *Writer) write(p []byte) {
	if w.err != nil || len(p) == 0 {
		return
	}
	if _, err := w.dst.Write(p); err != nil {
		w.err = err
	}
}

// armTimer makes sure the idle timer will fire. It is not moved on every
// Write; when it fires early it re-arms itself for the rest of the idle
// time, which costs less than resetting a timer per write.
func (w *Writer) armTimer() {
	if w.timerArmed {
		return
	}
	w.timerArmed = true
	if w.timer == nil {
		w.timer = time.AfterFunc(w.idle, w.idleFlush)
	} else {
		w.timer.Reset(w.idle)
	}
}

func (w *Writer) idleFlush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timerArmed = false
	if w.closed || w.err != nil || w.out >= len(w.buf) {
		return
	}
	if rest := w.idle - time.Since(w.lastWrite); rest > 0 {
		w.timerArmed = true
		w.timer.Reset(rest)
		return
	}
	w.emit(w.buf, true)
	w.keep(w.buf)
}
