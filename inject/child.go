package inject

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// Command is the program to run as the child.
type Command struct {
	// Args is the argument vector; Args[0] is looked up in the PATH of Env.
	Args []string
	// Env is the child's whole environment.
	Env []string
}

// StartError means the command could not be started: it was not found
// (exit status 127) or could not be executed (126).
type StartError struct {
	Name     string
	NotFound bool
	Err      error
}

func (e *StartError) Error() string {
	if e.NotFound {
		return e.Name + ": command not found"
	}
	return e.Name + ": cannot execute: " + e.Err.Error()
}

func (e *StartError) Unwrap() error { return e.Err }

// Supervisor runs the child and stays its parent: it forwards signals,
// passes the exit status through and, as PID 1, reaps orphans. With Watch
// set it also polls the secrets and restarts, signals or stops the child
// when they rotate.
type Supervisor struct {
	Command Command
	// Stdin, Stdout and Stderr are the child's standard streams. An
	// *os.File is handed to the child as it is, so a terminal stays a
	// terminal; any other writer is fed through a pipe (output masking),
	// one pipe per child. The supervisor never closes the writers: they
	// outlive each child, and the caller closes them once Run returns.
	Stdin          *os.File
	Stdout, Stderr io.Writer
	// Reap makes the supervisor reap every process that exits, not only
	// the child: PID 1 inherits orphans, and nobody else will.
	Reap bool
	// StopSignal and StopTimeout stop the child gracefully when a rotation
	// restarts it or ends secretrun: the signal, then SIGKILL after the
	// timeout (10s when zero).
	StopSignal  os.Signal
	StopTimeout time.Duration
	// OutputDrain bounds how long output is still copied after the child
	// exits, when a grandchild keeps its pipe open.
	OutputDrain time.Duration
	// Watch, when set, turns rotation on.
	Watch *Watch
	// Log receives rotation and outage events; nil discards them.
	Log *slog.Logger
}

// status is how a process ended, as an exit status in the shell's
// convention: its own status, or 128+N when killed by signal N.
type status int

// ErrNoCommand is returned when there is nothing to run.
var ErrNoCommand = errors.New("no command given; put it after --, as in: secretrun -- npm start")

// ErrExitOnChange is returned by Run when the secrets rotated with
// on_change: exit and the child was stopped for it, so that secretrun exits
// with a status of its own and an orchestrator restarts it.
var ErrExitOnChange = errors.New("the secrets rotated; the command was stopped (on_change: exit)")

const defaultStopTimeout = 10 * time.Second

// process is one started child, as the supervision loop drives it. The OS
// files implement it over a real process; tests use a fake.
type process interface {
	pid() int
	signal(os.Signal) error
	kill() error
	// exited delivers the child's status once, from its one waiter.
	exited() <-chan status
	// finish waits, at most d, for the output of an exited child to be
	// copied, and releases it.
	finish(d time.Duration)
}

// launcher starts the command with env as a new child.
type launcher func(env []string) (process, error)

// loop is what the OS part of Run hands the supervision loop.
type loop struct {
	launch launcher
	// sigs are the signals secretrun receives; forward says which of them
	// go to the child.
	sigs    <-chan os.Signal
	forward func(os.Signal) bool
	// terminating reports whether a signal asks the child to end, which
	// cancels a restart in progress: the user wants it gone.
	terminating func(os.Signal) bool
	// rotations come from the watcher; nil when not watching.
	rotations <-chan rotation
}

func (s *Supervisor) logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// startPipes gives each writer that is not a file a pipe and a goroutine
// copying from it. It returns the files for the child, the parent's write
// ends to close once the child has them, and a channel that is closed when
// every copy has finished.
func startPipes(writers ...io.Writer) (files []*os.File, parentEnds []*os.File, done chan struct{}, err error) {
	done = make(chan struct{})
	copies := 0
	finished := make(chan struct{}, len(writers))
	for _, w := range writers {
		if f, ok := w.(*os.File); ok {
			files = append(files, f)
			continue
		}
		if w == nil {
			w = io.Discard
		}
		r, pw, perr := os.Pipe()
		if perr != nil {
			for _, f := range parentEnds {
				f.Close()
			}
			return nil, nil, nil, perr
		}
		files = append(files, pw)
		parentEnds = append(parentEnds, pw)
		copies++
		go func() {
			defer func() { finished <- struct{}{} }()
			defer r.Close()
			_, _ = io.Copy(w, r)
		}()
	}
	go func() {
		for range copies {
			<-finished
		}
		close(done)
	}()
	return files, parentEnds, done, nil
}

// supervise runs the child until it exits for its own reasons, and carries
// out the rotations the watcher reports. It is the one place that decides
// what happens to the child; the OS files only start, signal and wait.
func (s *Supervisor) supervise(l loop) (int, error) {
	log := s.logger()
	cur, err := l.launch(s.Command.Env)
	if err != nil {
		return 0, err
	}
	stopTimeout := s.StopTimeout
	if stopTimeout <= 0 {
		stopTimeout = defaultStopTimeout
	}
	var (
		w = s.Watch
		// pending is a rotation waiting for its splay or the restart gap;
		// next is the one a stopping child is replaced for.
		pending, next *rotation
		actTimer      *time.Timer
		actC          <-chan time.Time
		stopTimer     *time.Timer
		stopC         <-chan time.Time
		stopping      bool
		exitAfterStop bool
		storm         restartGuard
	)
	if w != nil {
		storm = newRestartGuard(w.Interval)
	}
	cancelPending := func() {
		pending = nil
		if actTimer != nil {
			actTimer.Stop()
			actC = nil
		}
	}
	beginStop := func() {
		stopping = true
		if s.StopSignal == nil || cur.signal(s.StopSignal) != nil {
			_ = cur.kill()
			return
		}
		stopTimer = time.NewTimer(stopTimeout)
		stopC = stopTimer.C
	}
	act := func(r *rotation) {
		pid := cur.pid()
		switch w.OnChange {
		case ActionRestart:
			log.Info(fmt.Sprintf("rotation: %s; restarting pid %d", r.describe(), pid), r.attrs("restart", pid)...)
			next = r
			w.rotated(r.secrets)
			beginStop()
		case ActionSignal:
			log.Info(fmt.Sprintf("rotation: %s; sending %s to pid %d", r.describe(), signalName(w.Signal), pid), r.attrs("signal", pid)...)
			w.rotated(r.secrets)
			if err := cur.signal(w.Signal); err != nil {
				log.Warn(fmt.Sprintf("rotation: cannot send %s to pid %d: %v", signalName(w.Signal), pid, err))
			}
		case ActionExit:
			log.Info(fmt.Sprintf("rotation: %s; stopping pid %d and exiting (on_change: exit)", r.describe(), pid), r.attrs("exit", pid)...)
			exitAfterStop = true
			beginStop()
		}
	}

	for {
		select {
		case sig := <-l.sigs:
			if !l.forward(sig) {
				continue
			}
			_ = cur.signal(sig)
			if l.terminating(sig) {
				// The child is asked to end; its exit ends secretrun, and
				// nothing is started after it.
				cancelPending()
				next = nil
			}

		case st := <-cur.exited():
			old := cur.pid() // before finish releases the process
			cur.finish(s.OutputDrain)
			if stopTimer != nil {
				stopTimer.Stop()
				stopC = nil
			}
			switch {
			case stopping && exitAfterStop:
				return int(st), ErrExitOnChange
			case !stopping || next == nil:
				return int(st), nil
			}
			if cur, err = l.launch(next.env); err != nil {
				return 0, err
			}
			log.Info(fmt.Sprintf("restart: pid %d stopped; started pid %d", old, cur.pid()),
				slog.String("event", "restart"), slog.Int("stopped_pid", old), slog.Int("pid", cur.pid()))
			storm.restarted(time.Now())
			stopping, next = false, nil

		case <-stopC:
			stopC = nil
			log.Warn(fmt.Sprintf("restart: pid %d did not stop within %s of %s; killing it", cur.pid(), stopTimeout, signalName(s.StopSignal)),
				slog.String("event", "kill"), slog.Int("pid", cur.pid()))
			_ = cur.kill()

		case r := <-l.rotations:
			switch {
			case w.OnChange == ActionNone:
				log.Info(fmt.Sprintf("rotation: %s; pid %d keeps its environment (on_change: none)", r.describe(), cur.pid()), r.attrs("none", cur.pid())...)
				continue
			case stopping && exitAfterStop:
				continue
			case stopping:
				// The child being replaced gets the newest secrets.
				next = next.merge(&r)
				w.rotated(r.secrets)
				log.Info(fmt.Sprintf("rotation: %s; the restart in progress takes it", r.describe()), r.attrs("restart", cur.pid())...)
				continue
			}
			pending = pending.merge(&r)
			now := time.Now()
			at := now
			if w.Splay > 0 {
				at = at.Add(time.Duration(w.random() * float64(w.Splay)))
			}
			if w.OnChange == ActionRestart {
				if earliest := storm.earliest(); earliest.After(at) {
					at = earliest
					log.Warn(fmt.Sprintf("rotation: %s; restart held back %s (restarts are at least %s apart while rotations keep coming)",
						r.describe(), at.Sub(now).Round(time.Millisecond), storm.gap), r.attrs("hold", cur.pid())...)
				}
			}
			if actTimer != nil {
				actTimer.Stop()
			}
			if !at.After(now) {
				p := pending
				pending, actC = nil, nil
				act(p)
				continue
			}
			actTimer = time.NewTimer(at.Sub(now))
			actC = actTimer.C

		case <-actC:
			actC = nil
			p := pending
			pending = nil
			if p != nil {
				act(p)
			}
		}
	}
}

// restartGuard spaces restarts when rotations keep coming, so that a
// flapping secret cannot restart the child, and re-read the backend, over
// and over: restarts are at least gap apart; gap starts at the watch
// interval (at least one second) and doubles, up to maxRestartGap, with each
// restart that follows the previous one within twice the gap; a calmer
// restart puts it back to the start.
type restartGuard struct {
	base, gap time.Duration
	last      time.Time
}

const maxRestartGap = 5 * time.Minute

func newRestartGuard(interval time.Duration) restartGuard {
	base := max(interval, time.Second)
	return restartGuard{base: base, gap: base}
}

// earliest is when the next restart may happen.
func (g *restartGuard) earliest() time.Time {
	if g.last.IsZero() {
		return time.Time{}
	}
	return g.last.Add(g.gap)
}

func (g *restartGuard) restarted(now time.Time) {
	if !g.last.IsZero() && now.Sub(g.last) < 2*g.gap {
		g.gap = min(2*g.gap, max(maxRestartGap, g.base))
	} else {
		g.gap = g.base
	}
	g.last = now
}
