//go:build unix

package inject

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwarded are the signals passed on to the child. SIGCHLD and SIGURG are
// never among them: they concern secretrun (and the Go runtime) itself.
var forwarded = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

// fromTerminal are the signals a terminal sends to its whole foreground
// process group. When secretrun and the child share that group on a
// terminal, the child already has them; forwarding would deliver Ctrl-C
// twice.
func fromTerminal(sig os.Signal) bool {
	return sig == syscall.SIGINT || sig == syscall.SIGQUIT || sig == syscall.SIGWINCH
}

// Run starts the child and supervises it until it exits, returning its exit
// status (128+N when signal N killed it). Rotations restart, signal or stop
// the child as Policy says; a child stopped for on_change: exit gives
// ExitRotated.
func (s *Supervisor) Run() (int, error) {
	if len(s.Command.Args) == 0 {
		return 0, ErrNoCommand
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	var r *reaper
	if s.Reap {
		r = startReaper()
		defer r.stop()
	}
	foreground := inForeground(s.Stdin)
	forward := func(sig os.Signal) bool { return !foreground || !fromTerminal(sig) }
	tty := s.beginTerminal()
	if tty != nil {
		defer tty.end()
		forward = tty.forward
	}
	l := loop{
		launch: func(env []string) (process, error) {
			return s.start(Command{Args: s.Command.Args, Path: s.Command.Path, Env: env}, r, tty)
		},
		sigs:        sigs,
		forward:     forward,
		terminating: terminating,
	}
	return s.supervise(l)
}

// terminating reports whether sig asks a program to end.
func terminating(sig os.Signal) bool {
	return sig == syscall.SIGTERM || sig == syscall.SIGINT || sig == syscall.SIGQUIT
}

func (s *Supervisor) start(cmd Command, r *reaper, tty *ttySession) (*child, error) {
	path, err := cmd.Path, error(nil)
	if path == "" {
		if path, err = lookPath(cmd.Args[0], cmd.Env); err != nil {
			return nil, err
		}
	}
	stdin := s.Stdin
	if stdin == nil {
		if stdin, err = os.Open(os.DevNull); err != nil {
			return nil, err
		}
		defer stdin.Close()
	}
	cio, err := s.stdio(stdin, tty)
	if err != nil {
		return nil, err
	}
	c := &child{done: make(chan status, 1), output: cio.output}
	if r != nil {
		// Held across the start, so the reaper cannot reap the child
		// before it knows the child's PID.
		r.mu.Lock()
		defer r.mu.Unlock()
	}
	c.proc, err = os.StartProcess(path, cmd.Args, &os.ProcAttr{Env: cmd.Env, Files: withInherited(append(cio.files, s.Listeners...), s.inherited()), Sys: cio.sys})
	for _, f := range cio.parentEnds {
		f.Close()
	}
	if err != nil {
		return nil, startError(cmd.Args[0], err)
	}
	c.id = c.proc.Pid
	if r != nil {
		r.waiting[c.proc.Pid] = c.done
		return c, nil
	}
	go func() {
		ps, err := c.proc.Wait()
		if err != nil {
			c.done <- 128 + status(syscall.SIGKILL)
			return
		}
		c.done <- statusOf(ps.Sys().(syscall.WaitStatus))
	}()
	return c, nil
}

func statusOf(ws syscall.WaitStatus) status {
	if ws.Signaled() {
		return 128 + status(ws.Signal())
	}
	return status(ws.ExitStatus())
}

// inForeground reports whether f is a terminal whose foreground process
// group is secretrun's, which the child shares.
func inForeground(f *os.File) bool {
	if f == nil {
		return false
	}
	pgrp, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// reaper is the one wait4(-1) loop of PID 1: it reaps every process that
// exits, the child and the orphans the kernel re-parents to secretrun, and
// hands the child's status to its waiter.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan status
	sigchld chan os.Signal
	quit    chan struct{}
	done    chan struct{}
}

func startReaper() *reaper {
	r := &reaper{
		waiting: map[int]chan status{},
		sigchld: make(chan os.Signal, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	signal.Notify(r.sigchld, syscall.SIGCHLD)
	go r.loop()
	return r
}

func (r *reaper) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.sigchld:
			r.reapAll()
		case <-r.quit:
			return
		}
	}
}

// reapAll collects every exited process: SIGCHLD is not queued, so one
// signal may stand for several exits.
func (r *reaper) reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		r.mu.Lock()
		ch, ok := r.waiting[pid]
		delete(r.waiting, pid)
		r.mu.Unlock()
		if ok {
			ch <- statusOf(ws)
		}
	}
}

func (r *reaper) stop() {
	signal.Stop(r.sigchld)
	close(r.quit)
	<-r.done
}
