package inject

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Rolling restarts
//
// With on_change: rolling, a rotation starts the new child beside the old
// one instead of after it:
//
//   - The new child (the candidate) starts with the new environment and a
//     slot of its own: a port in $PORT behind the proxy, or the sockets
//     secretrun holds (listen:), and a notify socket when readiness is
//     notify.
//   - Once it is ready (ready.http, tcp, notify or delay), clients are
//     switched to it (the proxy sends new connections there; with shared
//     sockets there is nothing to switch), it becomes the current child,
//     and the old one is stopped: stop_signal, stop_timeout, SIGKILL. Until
//     it has exited it is retiring: connections it has keep being served.
//   - If the candidate exits first, or is not ready by ready.timeout, it is
//     stopped and the old child keeps serving with the secrets it has. The
//     rollout is tried again at the next rotation, or after a backoff that
//     starts at the watch interval and doubles up to five minutes.
//   - A rotation that arrives during a rollout waits for it to end, then
//     rolls out the newest secrets.
//   - The current child's own exit ends secretrun with its status, as with
//     every other on_change; a candidate and retiring children are stopped
//     first.
//
// restart and the other modes use the same slots, one child at a time: the
// proxy holds new connections while no child runs, and shared sockets keep
// queueing them, so clients see a pause, not a refusal.

// serving gives each child what clients reach it by.
type serving interface {
	// prepare makes a slot for a child about to start.
	prepare() (slot, error)
}

// slot is what one child was given to serve clients.
type slot interface {
	// env are variables the child gets besides its secrets ($PORT,
	// $NOTIFY_SOCKET, $LISTEN_FDS).
	env() []string
	// ready returns once the child is ready to serve, or with ctx's error.
	ready(ctx context.Context) error
	// activate sends clients to this child.
	activate()
	// release frees the slot once its child has exited.
	release()
}

// retiree is a child that is being stopped while another serves.
type retiree struct {
	proc process
	slot slot
	kill *time.Timer
}

// retired is a retiree's exit.
type retired struct {
	r  *retiree
	st status
}

// rollout is the supervisor's part for rolling restarts. Only the
// supervise goroutine touches it.
type rollout struct {
	// cand is the child being rolled out, with its slot and rotation.
	cand     process
	candSlot slot
	candRot  *Rotation
	// readyC delivers the candidate's readiness; cancelReady ends the wait.
	readyC      chan error
	cancelReady context.CancelFunc
	// curSlot is the current child's slot; curReady ends the wait for
	// it to be ready, for a child started alone.
	curSlot  slot
	curReady context.CancelFunc
	// retiring are the children being stopped; retiredC delivers their
	// exits.
	retiring map[*retiree]bool
	retiredC chan retired
	// backoff spaces retries of a rollout that failed.
	backoff time.Duration
	// exitCode is secretrun's status once every retiring child is gone,
	// in state draining.
	exitCode int
}

// candExited is the candidate's exit, or nil when there is none.
func (sv *supervisor) candExited() <-chan status {
	if sv.cand == nil {
		return nil
	}
	return sv.cand.exited()
}

// launch starts a child with env and a slot of its own.
func (sv *supervisor) launch(env []string) (process, slot, error) {
	var sl slot
	if sv.serving != nil {
		var err error
		if sl, err = sv.serving.prepare(); err != nil {
			return nil, nil, err
		}
		env = withVars(env, sl.env())
	}
	p, err := sv.l.launch(env)
	if err != nil {
		if sl != nil {
			sl.release()
		}
		return nil, nil, err
	}
	return p, sl, nil
}

// startCurrent starts a child that is to serve alone: the first one, and
// each one a restart starts. Clients are sent to it once it is ready, or
// at ready.timeout when it is slow: there is no other child to serve them.
func (sv *supervisor) startCurrent(env []string) error {
	p, sl, err := sv.launch(env)
	if err != nil {
		return err
	}
	sv.cur, sv.curSlot = p, sl
	if sl != nil {
		ctx, cancel := context.WithTimeout(context.Background(), sv.readyTimeout())
		sv.curReady = cancel
		go func() {
			defer cancel()
			if !errors.Is(sl.ready(ctx), context.Canceled) {
				sl.activate()
			}
		}()
	}
	return nil
}

// releaseCurrent gives back the current child's slot once it has exited.
func (sv *supervisor) releaseCurrent() {
	if sv.curReady != nil {
		sv.curReady()
		sv.curReady = nil
	}
	if sv.curSlot != nil {
		sv.curSlot.release()
		sv.curSlot = nil
	}
}

// beginRollout starts the candidate for r beside the current child.
func (sv *supervisor) beginRollout(r *Rotation) {
	pid := sv.cur.pid()
	p, sl, err := sv.launch(r.Env)
	if err != nil {
		sv.rollbackLater(r, fmt.Sprintf("cannot start the new child: %v", err), pid)
		return
	}
	sv.log.Info(fmt.Sprintf("rotation: %s; started pid %d beside pid %d, waiting until it is ready (on_change: rolling)", r.describe(), p.pid(), pid),
		r.attrs("rolling", pid)...)
	sv.cand, sv.candSlot, sv.candRot = p, sl, r
	ctx, cancel := context.WithTimeout(context.Background(), sv.readyTimeout())
	ready := make(chan error, 1)
	sv.readyC, sv.cancelReady = ready, cancel
	go func() { ready <- sl.ready(ctx) }()
	sv.state = rolling
}

func (sv *supervisor) readyTimeout() time.Duration {
	if sv.ReadyTimeout > 0 {
		return sv.ReadyTimeout
	}
	return defaultReadyTimeout
}

const defaultReadyTimeout = 30 * time.Second

// candidateReady ends the wait for the candidate: promoted when ready, or
// stopped and rolled back when not ready in time.
func (sv *supervisor) candidateReady(err error) {
	sv.readyC = nil
	sv.cancelReady()
	if err != nil {
		why := fmt.Sprintf("pid %d was not ready within %s: %v", sv.cand.pid(), sv.readyTimeout(), err)
		if !notReadyInTime(err) {
			why = fmt.Sprintf("pid %d is not ready: %v", sv.cand.pid(), err)
		}
		r := sv.candRot
		sv.retire(sv.cand, sv.candSlot)
		sv.cand, sv.candSlot, sv.candRot = nil, nil, nil
		sv.state = running
		sv.rollbackLater(r, why, sv.cur.pid())
		return
	}
	old, oldSlot := sv.cur, sv.curSlot
	if sv.curReady != nil {
		sv.curReady()
		sv.curReady = nil
	}
	sv.cur, sv.curSlot = sv.cand, sv.candSlot
	sv.cand, sv.candSlot, sv.candRot = nil, nil, nil
	sv.curSlot.activate()
	sv.state = running
	sv.backoff = 0
	sv.storm.restarted(time.Now())
	sv.log.Info(fmt.Sprintf("rotation: pid %d is ready and serves; stopping pid %d", sv.cur.pid(), old.pid()),
		slog.String("event", "rolled"), slog.Int("pid", sv.cur.pid()), slog.Int("stopped_pid", old.pid()))
	sv.retire(old, oldSlot)
	sv.resume()
}

// candidateExited handles a candidate that exited before it was ready.
func (sv *supervisor) candidateExited(st status) {
	pid := sv.cand.pid()
	sv.cand.finish(sv.OutputDrain)
	sv.cancelReady()
	sv.readyC = nil
	if sv.candSlot != nil {
		sv.candSlot.release()
	}
	r := sv.candRot
	sv.cand, sv.candSlot, sv.candRot = nil, nil, nil
	sv.state = running
	sv.rollbackLater(r, fmt.Sprintf("pid %d exited with status %d before it was ready", pid, st), sv.cur.pid())
}

// rollbackLater logs a failed rollout and tries r again after a backoff,
// unless a newer rotation comes first.
func (sv *supervisor) rollbackLater(r *Rotation, why string, pid int) {
	if sv.backoff == 0 {
		sv.backoff = sv.storm.base
	} else {
		sv.backoff = min(2*sv.backoff, maxRestartGap)
	}
	sv.log.Warn(fmt.Sprintf("rotation: rollout of %s failed: %s; pid %d keeps serving with the secrets it has, retrying in %s",
		r.describe(), why, pid, sv.backoff), r.attrs("rollback", pid)...)
	if sv.pending != nil {
		// A rotation came during the rollout: the newest secrets go now.
		sv.pending = r.merge(sv.pending)
		sv.resume()
		return
	}
	sv.pending = r
	sv.schedule(time.Now().Add(sv.backoff))
}

// resume acts on a rotation that waited for a rollout to end.
func (sv *supervisor) resume() {
	if sv.pending == nil || sv.state != running {
		return
	}
	at := time.Now()
	if earliest := sv.storm.earliest(); earliest.After(at) {
		at = earliest
	}
	sv.schedule(at)
}

// schedule makes the pending rotation act at t.
func (sv *supervisor) schedule(t time.Time) {
	if sv.actTimer != nil {
		sv.actTimer.Stop()
	}
	sv.actTimer = time.NewTimer(max(time.Until(t), 0))
	sv.actC = sv.actTimer.C
}

// retire stops a child that no longer serves (stop_signal, then SIGKILL
// after stop_timeout) and keeps track of it until it has exited.
func (sv *supervisor) retire(p process, sl slot) {
	if sv.retiring == nil {
		sv.retiring = map[*retiree]bool{}
		sv.retiredC = make(chan retired)
	}
	r := &retiree{proc: p, slot: sl}
	sv.retiring[r] = true
	pid := p.pid()
	if sv.StopSignal == nil || p.signal(sv.StopSignal) != nil {
		_ = p.kill()
	} else {
		timeout, sig, log := sv.stopTimeout, sv.StopSignal, sv.log
		r.kill = time.AfterFunc(timeout, func() {
			log.Warn(fmt.Sprintf("rotation: pid %d did not stop within %s of %s; killing it", pid, timeout, signalName(sig)),
				slog.String("event", "kill"), slog.Int("pid", pid))
			_ = p.kill()
		})
	}
	exits := sv.retiredC
	go func() { exits <- retired{r: r, st: <-p.exited()} }()
}

// retiredExit handles a retiring child's exit. It reports whether
// secretrun is done: in state draining, once the last one is gone.
func (sv *supervisor) retiredExit(e retired) bool {
	if e.r.kill != nil {
		e.r.kill.Stop()
	}
	pid := e.r.proc.pid()
	e.r.proc.finish(sv.OutputDrain)
	if e.r.slot != nil {
		e.r.slot.release()
	}
	delete(sv.retiring, e.r)
	sv.log.Info(fmt.Sprintf("rotation: pid %d stopped", pid), slog.String("event", "stopped"), slog.Int("pid", pid), slog.Int("status", int(e.st)))
	return sv.state == draining && len(sv.retiring) == 0
}

// finishing ends secretrun with code once no other child is left: a
// candidate is stopped, and retiring children are waited for.
func (sv *supervisor) finishing(code int) bool {
	if sv.cand != nil {
		sv.cancelReady()
		sv.readyC = nil
		sv.retire(sv.cand, sv.candSlot)
		sv.cand, sv.candSlot, sv.candRot = nil, nil, nil
	}
	sv.releaseCurrent()
	if len(sv.retiring) == 0 {
		return true
	}
	sv.cancelPending()
	sv.state, sv.exitCode = draining, code
	return false
}

// signalOthers passes a signal that ends programs on to the candidate and
// the retiring children too: the user wants them all gone.
func (sv *supervisor) signalOthers(sig os.Signal) {
	if sv.cand != nil {
		_ = sv.cand.signal(sig)
	}
	for r := range sv.retiring {
		_ = r.proc.signal(sig)
	}
}
