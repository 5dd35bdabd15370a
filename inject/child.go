package inject

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"
)

// Command is the program to run as the child.
type Command struct {
	// Args is the argument vector; Args[0] is looked up in the PATH of Env
	// unless Path is set.
	Args []string
	// Path, when set, is the program to run, Args[0] being only its name.
	Path string
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
// passes the exit status through and, as PID 1, reaps orphans. Rotations,
// when it is given a stream of them, restart, signal or stop the child as
// Policy says.
type Supervisor struct {
	Command Command
	// Stdin, Stdout and Stderr are the child's standard streams. An
	// *os.File is handed to the child as it is, so a terminal stays a
	// terminal; any other writer is fed through a pipe (output masking),
	// one pipe per child. The supervisor never closes the writers: they
	// outlive each child, and the caller closes them once Run returns.
	Stdin          *os.File
	Stdout, Stderr io.Writer
	// Terminal, when set, runs each child on a pseudo-terminal of its own
	// whose output is written to Stdout (see Terminal); nil keeps pipes.
	Terminal *Terminal
	// Reap makes the supervisor reap every process that exits, not only
	// the child: PID 1 inherits orphans, and nobody else will.
	Reap bool
	// Inherit, when set, lists the descriptors every child inherits, each
	// at its own number (memory-only files); asked at each start.
	Inherit func() []*os.File
	// StopSignal and StopTimeout stop the child gracefully when a rotation
	// restarts it or ends secretrun: the signal, then SIGKILL after the
	// timeout (10s when zero).
	StopSignal  os.Signal
	StopTimeout time.Duration
	// OutputDrain bounds how long output is still copied after the child
	// exits, when a grandchild keeps its pipe open.
	OutputDrain time.Duration
	// Rotations are new environments for the child, from the watch; nil
	// when nothing is watched.
	Rotations <-chan Rotation
	// Policy says what a rotation does to the child.
	Policy Policy
	// ReadyTimeout bounds the wait for a new child to be ready during a
	// rolling restart (30s when zero).
	ReadyTimeout time.Duration
	// Listeners are sockets every child inherits at fd 3, 4, ...
	// (listen:).
	Listeners []*os.File
	// serving gives each child its port or sockets (listen:, proxy:);
	// nil when clients do not reach the child through secretrun.
	serving serving
	// Log receives rotation events; nil discards them.
	Log *slog.Logger
	// Started, when set, is told the PID of every child as it starts.
	Started func(pid int)
}

// Policy is what the supervisor does when the secrets rotate: the
// `on_change` settings.
type Policy struct {
	OnChange Action
	// Signal is sent to the child with ActionSignal.
	Signal os.Signal
	// Splay delays each action by a random time up to Splay, so that a
	// fleet that sees a rotation together does not restart together.
	Splay time.Duration
	// Interval is the watch interval, the first gap between restarts that
	// keep coming (see restartGuard).
	Interval time.Duration
	// OnRotate, when set, is called with the new secrets before the child
	// is restarted or signalled with them, for instance to mask the new
	// values in the child's output too.
	OnRotate func(*Secrets)

	// rand returns a number in [0, 1); tests make it predictable.
	rand func() float64
}

func (p *Policy) random() float64 {
	if p.rand != nil {
		return p.rand()
	}
	return rand.Float64()
}

func (p *Policy) rotated(s *Secrets) {
	if p.OnRotate != nil {
		p.OnRotate(s)
	}
}

// status is how a process ended, as an exit status in the shell's
// convention: its own status, or 128+N when killed by signal N.
type status int

// ErrNoCommand is returned when there is nothing to run.
var ErrNoCommand = errors.New("no command given; put it after --, as in: secretrun -- npm start")

// ExitRotated is the exit status after on_change: exit stopped the child
// because its secrets rotated. Like timeout(1)'s 124, it is none of the
// child's statuses that secretrun passes through (125-127 are its own
// failures, 128+N a signal), so an orchestrator can tell it apart and
// restart the container, which then starts with the new secrets.
const ExitRotated = 124

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

// The supervisor's states. Every event (a signal, the child's exit, a
// rotation, a timer) is handled by the state the supervisor is in, and only
// supervise moves it from one state to another.
type state int

const (
	// running: the child runs with the current secrets; a rotation may be
	// pending, waiting for its splay or for the restart gap.
	running state = iota
	// restarting: the child was asked to stop so that a new one starts
	// with newer secrets.
	restarting
	// exiting: the child was asked to stop for on_change: exit; secretrun
	// ends when it has.
	exiting
	// ending: the child was asked to end by a signal the user sent; its
	// exit ends secretrun, and nothing starts after it.
	ending
	// rolling: a new child runs beside the current one, which serves
	// until the new one is ready (on_change: rolling, see rollout.go).
	rolling
	// draining: the current child has exited; secretrun ends once the
	// children being stopped have too.
	draining
)

func (s state) String() string {
	return [...]string{"running", "restarting", "exiting", "ending", "rolling", "draining"}[s]
}

// supervisor is the state of one supervise call.
type supervisor struct {
	*Supervisor
	l     loop
	log   *slog.Logger
	state state
	cur   process
	// pending is a rotation waiting for its splay or the restart gap, in
	// state running; next is the one a restarting child is replaced for.
	pending, next *Rotation
	actTimer      *time.Timer
	actC          <-chan time.Time
	stopTimer     *time.Timer
	stopC         <-chan time.Time
	stopTimeout   time.Duration
	storm         restartGuard
	serving       serving
	rollout
}

// supervise runs the child until it exits for its own reasons, and carries
// out the rotations it receives. It is the one place that decides what
// happens to the child; the OS files only start, signal and wait.
func (s *Supervisor) supervise(l loop) (int, error) {
	if s.Started != nil {
		launch := l.launch
		l.launch = func(env []string) (process, error) {
			p, err := launch(env)
			if err == nil {
				s.Started(p.pid())
			}
			return p, err
		}
	}
	sv := &supervisor{Supervisor: s, l: l, log: s.logger(), stopTimeout: s.StopTimeout, storm: newRestartGuard(s.Policy.Interval), serving: s.serving}
	if sv.stopTimeout <= 0 {
		sv.stopTimeout = defaultStopTimeout
	}
	if err := sv.startCurrent(s.Command.Env); err != nil {
		return 0, err
	}
	defer sv.stopTimers()
	for {
		var curExited <-chan status
		if sv.state != draining {
			curExited = sv.cur.exited()
		}
		select {
		case sig := <-l.sigs:
			sv.signalled(sig)
		case st := <-curExited:
			if done, code, err := sv.exited(st); done {
				return code, err
			}
		case err := <-sv.readyC:
			sv.candidateReady(err)
		case st := <-sv.candExited():
			sv.candidateExited(st)
		case e := <-sv.retiredC:
			if sv.retiredExit(e) {
				return sv.exitCode, nil
			}
		case <-sv.stopC:
			sv.stopC = nil
			sv.log.Warn(fmt.Sprintf("restart: pid %d did not stop within %s of %s; killing it", sv.cur.pid(), sv.stopTimeout, signalName(s.StopSignal)),
				slog.String("event", "kill"), slog.Int("pid", sv.cur.pid()))
			_ = sv.cur.kill()
		case r := <-s.Rotations:
			sv.rotation(&r)
		case <-sv.actC:
			sv.actC = nil
			if p := sv.pending; p != nil && sv.state == running {
				sv.pending = nil
				sv.act(p)
			}
		}
	}
}

func (sv *supervisor) stopTimers() {
	if sv.actTimer != nil {
		sv.actTimer.Stop()
	}
	if sv.stopTimer != nil {
		sv.stopTimer.Stop()
	}
}

// signalled forwards a signal; one that asks the child to end cancels any
// rotation: the user wants it gone, not replaced.
func (sv *supervisor) signalled(sig os.Signal) {
	if !sv.l.forward(sig) {
		return
	}
	if sv.state != draining {
		_ = sv.cur.signal(sig)
	}
	if !sv.l.terminating(sig) {
		return
	}
	sv.signalOthers(sig)
	if sv.state != exiting && sv.state != draining {
		sv.cancelPending()
		sv.next = nil
		if sv.cand != nil {
			sv.cancelReady()
			sv.readyC = nil
			sv.retire(sv.cand, sv.candSlot)
			sv.cand, sv.candSlot, sv.candRot = nil, nil, nil
		}
		sv.state = ending
	}
}

// exited handles the child's exit: in state restarting a new child starts;
// in every other state secretrun ends with the child's status.
func (sv *supervisor) exited(st status) (done bool, code int, err error) {
	old := sv.cur.pid() // before finish releases the process
	sv.cur.finish(sv.OutputDrain)
	if sv.stopTimer != nil {
		sv.stopTimer.Stop()
		sv.stopC = nil
	}
	switch sv.state {
	case exiting:
		return sv.finishing(ExitRotated), ExitRotated, nil
	case running, ending, rolling:
		return sv.finishing(int(st)), int(st), nil
	}
	sv.releaseCurrent()
	if err = sv.startCurrent(sv.next.Env); err != nil {
		return true, 0, err
	}
	sv.log.Info(fmt.Sprintf("restart: pid %d stopped; started pid %d", old, sv.cur.pid()),
		slog.String("event", "restart"), slog.Int("stopped_pid", old), slog.Int("pid", sv.cur.pid()))
	sv.storm.restarted(time.Now())
	sv.state, sv.next = running, nil
	return false, 0, nil
}

// rotation takes a new environment from the watch.
func (sv *supervisor) rotation(r *Rotation) {
	p := &sv.Policy
	switch {
	case p.OnChange == ActionNone:
		// The environment stays; memory-only files are rewritten.
		p.rotated(r.Secrets)
		sv.log.Info(fmt.Sprintf("rotation: %s; pid %d keeps its environment (on_change: none)", r.describe(), sv.cur.pid()), r.attrs("none", sv.cur.pid())...)
		return
	case sv.state == exiting || sv.state == ending || sv.state == draining:
		return
	case sv.state == rolling:
		// Rolled out once the one in progress has ended.
		sv.pending = sv.pending.merge(r)
		p.rotated(r.Secrets)
		sv.log.Info(fmt.Sprintf("rotation: %s; rolled out after the rollout in progress", r.describe()), r.attrs("rolling", sv.cur.pid())...)
		return
	case sv.state == restarting:
		// The child being replaced gets the newest secrets.
		sv.next = sv.next.merge(r)
		p.rotated(r.Secrets)
		sv.log.Info(fmt.Sprintf("rotation: %s; the restart in progress takes it", r.describe()), r.attrs("restart", sv.cur.pid())...)
		return
	}
	sv.pending = sv.pending.merge(r)
	now := time.Now()
	at := now
	if p.Splay > 0 {
		at = at.Add(time.Duration(p.random() * float64(p.Splay)))
	}
	if p.OnChange == ActionRestart || p.OnChange == ActionRolling {
		if earliest := sv.storm.earliest(); earliest.After(at) {
			at = earliest
			sv.log.Warn(fmt.Sprintf("rotation: %s; restart held back %s (restarts are at least %s apart while rotations keep coming)",
				r.describe(), at.Sub(now).Round(time.Millisecond), sv.storm.gap), r.attrs("hold", sv.cur.pid())...)
		}
	}
	if sv.actTimer != nil {
		sv.actTimer.Stop()
		sv.actC = nil
	}
	if !at.After(now) {
		pending := sv.pending
		sv.pending = nil
		sv.act(pending)
		return
	}
	sv.actTimer = time.NewTimer(at.Sub(now))
	sv.actC = sv.actTimer.C
}

func (sv *supervisor) cancelPending() {
	sv.pending = nil
	if sv.actTimer != nil {
		sv.actTimer.Stop()
		sv.actC = nil
	}
}

// act applies on_change to the running child.
func (sv *supervisor) act(r *Rotation) {
	p := &sv.Policy
	pid := sv.cur.pid()
	switch p.OnChange {
	case ActionRestart:
		sv.log.Info(fmt.Sprintf("rotation: %s; restarting pid %d", r.describe(), pid), r.attrs("restart", pid)...)
		sv.next = r
		p.rotated(r.Secrets)
		sv.beginStop(restarting)
	case ActionSignal:
		sv.log.Info(fmt.Sprintf("rotation: %s; sending %s to pid %d", r.describe(), signalName(p.Signal), pid), r.attrs("signal", pid)...)
		p.rotated(r.Secrets)
		if err := sv.cur.signal(p.Signal); err != nil {
			sv.log.Warn(fmt.Sprintf("rotation: cannot send %s to pid %d: %v", signalName(p.Signal), pid, err))
		}
	case ActionRolling:
		p.rotated(r.Secrets)
		sv.beginRollout(r)
	case ActionExit:
		sv.log.Info(fmt.Sprintf("rotation: %s; stopping pid %d and exiting (on_change: exit)", r.describe(), pid), r.attrs("exit", pid)...)
		sv.beginStop(exiting)
	}
}

// beginStop asks the child to stop gracefully, moving to state to.
func (sv *supervisor) beginStop(to state) {
	sv.state = to
	if sv.StopSignal == nil || sv.cur.signal(sv.StopSignal) != nil {
		_ = sv.cur.kill()
		return
	}
	sv.stopTimer = time.NewTimer(sv.stopTimeout)
	sv.stopC = sv.stopTimer.C
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
