package inject

import (
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

func openTerminal(t *testing.T, rows, cols uint16) (ptmx, pts *os.File) {
	t.Helper()
	ptmx, pts, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close(); pts.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols}); err != nil {
		t.Fatal(err)
	}
	// With deadlines, so that a test that reads too much fails.
	if ptmx, err = pollable(ptmx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close() })
	return ptmx, pts
}

func termios(t *testing.T, f *os.File) unix.Termios {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return *tio
}

// lockedBuffer is a writer the pseudo-terminal's copy and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A supervisor with a Terminal gives the child a controlling terminal of
// the outer terminal's size on stdout and stderr, and its output goes to
// Stdout; stdin that is no terminal stays what it is.
func TestSupervisorRunsTheChildOnAPseudoTerminal(t *testing.T) {
	_, pts := openTerminal(t, 27, 91)
	var out lockedBuffer
	s := &Supervisor{
		Command: Command{Args: []string{"sh", "-c", `[ -t 0 ] || echo "stdin is no terminal"
for fd in 1 2; do [ -t $fd ] && echo "fd $fd is a terminal"; done
echo "size $(stty size </dev/tty)"
echo "to stderr" >&2
exit 7`}, Env: os.Environ()},
		Stdout:   &out,
		Stderr:   io.Discard,
		Terminal: &Terminal{Out: pts, Stderr: true},
	}
	st, err := s.Run()
	if err != nil || st != 7 {
		t.Fatalf("Run = %d, %v; want the child's 7", st, err)
	}
	want := "stdin is no terminal\r\nfd 1 is a terminal\r\nfd 2 is a terminal\r\nsize 27 91\r\nto stderr\r\n"
	if got := out.String(); got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// A panic in one of the session's goroutines gives the terminal its
// settings back on its way out.
func TestTerminalRestoredWhenAPanicUnwinds(t *testing.T) {
	_, pts := openTerminal(t, 24, 80)
	before := termios(t, pts)
	settings, err := term.MakeRaw(int(pts.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if termios(t, pts) == before {
		t.Fatal("raw mode changed nothing")
	}
	s := &ttySession{in: pts, settings: settings, raw: true}
	func() {
		defer func() {
			if r := recover(); r != "copy failed" {
				t.Errorf("the panic became %v", r)
			}
		}()
		defer s.restoreOnPanic()
		panic("copy failed")
	}()
	if after := termios(t, pts); after != before {
		t.Errorf("settings after the panic\n%+v\nwant\n%+v", after, before)
	}
}

// secretrun's own messages start at the left margin whether its terminal
// is raw or not, and never get two carriage returns.
func TestMessageWriterEndsLinesOnARawTerminal(t *testing.T) {
	ptmx, pts := openTerminal(t, 24, 80)
	w := MessageWriter(pts)
	read := func() string {
		t.Helper()
		_ = ptmx.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got strings.Builder
		buf := make([]byte, 256)
		for !strings.HasSuffix(got.String(), "end\r\n") {
			n, err := ptmx.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				t.Fatalf("read %q: %v", got.String(), err)
			}
		}
		return got.String()
	}
	if _, err := io.WriteString(w, "secretrun: cooked\nend\n"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "secretrun: cooked\r\nend\r\n" {
		t.Errorf("on a cooked terminal: %q", got)
	}
	settings, err := term.MakeRaw(int(pts.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer term.Restore(int(pts.Fd()), settings)
	if _, err := io.WriteString(w, "secretrun: raw\nend\n"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "secretrun: raw\r\nend\r\n" {
		t.Errorf("on a raw terminal: %q", got)
	}
	if MessageWriter(io.Discard) != io.Discard {
		t.Errorf("a writer that is no terminal is wrapped")
	}
}
