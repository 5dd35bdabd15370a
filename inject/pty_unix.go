//go:build unix

package inject

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// onTerminal returns the Terminal for a masked child whose output goes to
// stdout and stderr, or nil when stdout is no terminal (CI logs, pipes):
// that output keeps its pipes.
func onTerminal(stdout, stderr io.Writer) *Terminal {
	out, ok := stdout.(*os.File)
	if !ok || !term.IsTerminal(int(out.Fd())) {
		return nil
	}
	errf, ok := stderr.(*os.File)
	return &Terminal{Out: out, Stderr: ok && term.IsTerminal(int(errf.Fd()))}
}

// childIO is what a child is started with: its standard files, the
// parent's ends of them to close once the child has them, a channel closed
// once its output has been copied, and its process attributes.
type childIO struct {
	files, parentEnds []*os.File
	output            chan struct{}
	sys               *syscall.SysProcAttr
}

// stdio prepares a child's standard files: a pseudo-terminal of its own in
// a terminal session, pipes for the writers that are not files otherwise.
func (s *Supervisor) stdio(stdin *os.File, tty *ttySession) (childIO, error) {
	if tty != nil {
		return tty.stdio(stdin, s.Stdout, s.Stderr)
	}
	files, parentEnds, output, err := startPipes(s.Stdout, s.Stderr)
	return childIO{files: append([]*os.File{stdin}, files...), parentEnds: parentEnds, output: output}, err
}

// beginTerminal starts the terminal session of a Run, or returns nil when
// the Supervisor has no Terminal or the session cannot be had: the children
// then get pipes, as they would with no terminal.
func (s *Supervisor) beginTerminal() *ttySession {
	if s.Terminal == nil {
		return nil
	}
	tty, err := beginTerminal(s.Stdin, s.Terminal)
	if err != nil {
		s.logger().Warn(fmt.Sprintf("cannot run the command on a pseudo-terminal (%v); its output goes through pipes", err))
		return nil
	}
	return tty
}

// ttySession is secretrun's terminal while a Supervisor with a Terminal
// runs: in raw mode while keystrokes are relayed, the same for every child
// a rotation starts, and given back as it was however Run ends.
type ttySession struct {
	out         *os.File
	mergeStderr bool
	// in is the terminal on stdin; nil when stdin is not a terminal, and
	// the children get secretrun's stdin as it is.
	in *os.File
	// settings are the terminal's settings as secretrun found them. Every
	// pseudo-terminal starts with them, so that the erase character, IUTF8
	// and the like are the user's; the terminal gets them back at the end.
	settings *term.State
	// raw says in is in raw mode and what is typed is relayed.
	raw         bool
	restoreOnce sync.Once

	mu sync.Mutex
	// live are the master sides of the children's pseudo-terminals, in
	// the order they started; two overlap while a rolling restart waits
	// for the new child. Keystrokes go to the newest, or to the old child
	// again when the new one is rolled back.
	live []*os.File

	winch        chan os.Signal
	quit         chan struct{}
	wakeR, wakeW *os.File
	wg           sync.WaitGroup
}

func beginTerminal(stdin *os.File, t *Terminal) (*ttySession, error) {
	s := &ttySession{out: t.Out, mergeStderr: t.Stderr, winch: make(chan os.Signal, 1), quit: make(chan struct{})}
	from := t.Out
	if stdin != nil && term.IsTerminal(int(stdin.Fd())) {
		s.in, from = stdin, stdin
	}
	var err error
	if s.settings, err = term.GetState(int(from.Fd())); err != nil {
		return nil, fmt.Errorf("read the terminal's settings: %w", err)
	}
	// In the background, changing the terminal's settings or reading from
	// it would stop secretrun (SIGTTOU, SIGTTIN). Nothing is relayed then:
	// the child waits for input, as a background job would.
	if s.in != nil && inForeground(s.in) {
		if s.wakeR, s.wakeW, err = os.Pipe(); err != nil {
			return nil, err
		}
		if _, err := term.MakeRaw(int(s.in.Fd())); err != nil {
			s.wakeR.Close()
			s.wakeW.Close()
			return nil, fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		s.raw = true
		s.wg.Go(s.relay)
	}
	signal.Notify(s.winch, syscall.SIGWINCH)
	s.wg.Go(s.resizeOnWinch)
	return s, nil
}

// forward says which signals secretrun passes on to the child. Nothing
// the terminal sends reaches the child by itself: in raw mode the
// pseudo-terminal turns Ctrl-C into SIGINT, and otherwise the child, in a
// session of its own, is outside the terminal's foreground group. A window
// change is the exception: it resizes the pseudo-terminal, whose SIGWINCH
// the child gets from the kernel.
func (s *ttySession) forward(sig os.Signal) bool { return sig != syscall.SIGWINCH }

// end stops relaying and gives the terminal its settings back.
func (s *ttySession) end() {
	signal.Stop(s.winch)
	close(s.quit)
	if s.wakeW != nil {
		_, _ = s.wakeW.Write([]byte{0})
	}
	// Once end returns, nothing more is read from the terminal: the shell
	// owns it again. Only a relay stuck writing to a child that never
	// reads, whose pseudo-terminal a grandchild holds, is not waited for.
	relayed := make(chan struct{})
	go func() { s.wg.Wait(); close(relayed) }()
	select {
	case <-relayed:
	case <-time.After(time.Second):
	}
	s.restore()
	if s.wakeW != nil {
		s.wakeW.Close()
		s.wakeR.Close()
	}
}

func (s *ttySession) restore() {
	s.restoreOnce.Do(func() {
		if s.raw {
			_ = term.Restore(int(s.in.Fd()), s.settings)
		}
	})
}

// restoreOnPanic, deferred in the session's goroutines, gives the terminal
// its settings back before a panic ends secretrun; a shell left in raw mode
// is unusable.
func (s *ttySession) restoreOnPanic() {
	if r := recover(); r != nil {
		s.restore()
		panic(r)
	}
}

// relay copies what is typed to the running child's pseudo-terminal. It
// polls rather than blocks in read, so that end can stop it before it takes
// a keystroke meant for the shell.
func (s *ttySession) relay() {
	defer s.restoreOnPanic()
	fds := []unix.PollFd{
		{Fd: int32(s.in.Fd()), Events: unix.POLLIN},
		{Fd: int32(s.wakeR.Fd()), Events: unix.POLLIN},
	}
	buf := make([]byte, 4096)
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(int(fds[0].Fd), buf)
		if n > 0 {
			if m := s.current(); m != nil {
				_, _ = m.Write(buf[:n])
			}
		}
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
		case err != nil, n == 0:
			return // the terminal hung up
		}
	}
}

// resizeOnWinch gives the running child's pseudo-terminal the terminal's
// size whenever it changes.
func (s *ttySession) resizeOnWinch() {
	defer s.restoreOnPanic()
	for {
		select {
		case <-s.winch:
			s.mu.Lock()
			live := slices.Clone(s.live)
			s.mu.Unlock()
			for _, m := range live {
				_ = s.resize(m)
			}
		case <-s.quit:
			return
		}
	}
}

func (s *ttySession) resize(master *os.File) error {
	ws, err := unix.IoctlGetWinsize(int(s.out.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return err
	}
	// Through the raw connection: Fd would put the master back in
	// blocking mode.
	rc, err := master.SyscallConn()
	if err != nil {
		return err
	}
	if cerr := rc.Control(func(fd uintptr) { err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); cerr != nil {
		return cerr
	}
	return err
}

func (s *ttySession) current() *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.live) == 0 {
		return nil
	}
	return s.live[len(s.live)-1]
}

// stdio gives a child a new pseudo-terminal as its controlling terminal,
// its stdout, and its stdin and stderr where secretrun's are terminals,
// and copies what the child writes there to stdout, the masker.
func (s *ttySession) stdio(stdin *os.File, stdout, stderr io.Writer) (cio childIO, err error) {
	master, slave, err := pty.Open()
	if err != nil {
		return cio, fmt.Errorf("open a pseudo-terminal for the command: %w (with --mask=false or output redirected, secretrun needs none)", err)
	}
	defer func() {
		if err != nil {
			master.Close()
			slave.Close()
		}
	}()
	if err = term.Restore(int(slave.Fd()), s.settings); err != nil {
		return cio, fmt.Errorf("set up the pseudo-terminal: %w", err)
	}
	if err = pty.InheritSize(s.out, slave); err != nil {
		return cio, fmt.Errorf("set up the pseudo-terminal: %w", err)
	}
	m, err := pollable(master)
	if err != nil {
		return cio, err
	}
	master = m
	in, errOut := stdin, slave
	if s.in != nil {
		in = slave
	}
	cio.parentEnds = []*os.File{slave}
	var stderrCopied chan struct{}
	if !s.mergeStderr {
		files, ends, done, perr := startPipes(stderr)
		if perr != nil {
			return cio, perr
		}
		errOut, stderrCopied = files[0], done
		cio.parentEnds = append(cio.parentEnds, ends...)
	}
	cio.files = []*os.File{in, slave, errOut}
	// Ctty is the child's descriptor: its stdout, always the pseudo-terminal.
	cio.sys = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 1}
	cio.output = make(chan struct{})
	s.mu.Lock()
	s.live = append(s.live, master)
	s.mu.Unlock()
	go func() {
		defer close(cio.output)
		defer s.restoreOnPanic()
		// The copy ends with EIO once every process has closed the
		// pseudo-terminal: the child, and any grandchild that kept it.
		_, _ = io.Copy(stdout, master)
		s.mu.Lock()
		s.live = slices.DeleteFunc(s.live, func(m *os.File) bool { return m == master })
		s.mu.Unlock()
		master.Close()
		if stderrCopied != nil {
			<-stderrCopied
		}
	}()
	return cio, nil
}

// pollable returns the master side of a pseudo-terminal as a file in the
// runtime's poller, so that closing it ends a relay write blocked on a child
// that does not read. The pty package leaves it in blocking mode.
func pollable(master *os.File) (*os.File, error) {
	defer master.Close()
	fd, err := unix.FcntlInt(master.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("set up the pseudo-terminal: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set up the pseudo-terminal: %w", err)
	}
	return os.NewFile(uintptr(fd), master.Name()), nil
}

// MessageWriter returns the writer for secretrun's own messages to w.
// While a masked child runs on a pseudo-terminal, secretrun's terminal is in
// raw mode, where a line feed no longer returns the cursor to the left
// margin; on a terminal in that mode the writer ends lines with CR LF
// itself.
func MessageWriter(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return w
	}
	return &messageWriter{f: f}
}

type messageWriter struct{ f *os.File }

func (m *messageWriter) Write(p []byte) (int, error) {
	t, err := unix.IoctlGetTermios(int(m.f.Fd()), ioctlGetTermios)
	if err != nil || t.Oflag&unix.OPOST != 0 && t.Oflag&unix.ONLCR != 0 {
		return m.f.Write(p)
	}
	if _, err := m.f.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}
