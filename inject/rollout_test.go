package inject

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secretrun/secretrun/providers/providertest"
)

// fakeServing gives each child a port and becomes ready readyAfter after
// the child starts, or never when readyAfter is negative.
type fakeServing struct {
	mu         sync.Mutex
	readyAfter time.Duration
	slots      []*fakeSlot
	// active is the port clients are sent to, 0 for none.
	active int
}

type fakeSlot struct {
	s        *fakeServing
	port     int
	released bool
}

func (s *fakeServing) prepare() (slot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := &fakeSlot{s: s, port: 9000 + len(s.slots)}
	s.slots = append(s.slots, sl)
	return sl, nil
}

func (s *fakeServing) serving() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

func (s *fakeServing) released() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ports []int
	for _, sl := range s.slots {
		if sl.released {
			ports = append(ports, sl.port)
		}
	}
	return ports
}

func (sl *fakeSlot) env() []string { return []string{fmt.Sprintf("PORT=%d", sl.port)} }

func (sl *fakeSlot) ready(ctx context.Context) error {
	if sl.s.readyAfter < 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	t := time.NewTimer(sl.s.readyAfter)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (sl *fakeSlot) activate() {
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	if !sl.released {
		sl.s.active = sl.port
	}
}

func (sl *fakeSlot) release() {
	sl.s.mu.Lock()
	defer sl.s.mu.Unlock()
	sl.released = true
	if sl.s.active == sl.port {
		sl.s.active = 0
	}
}

// rollingA watches A with on_change: rolling; new children are ready two
// seconds after they start.
func rollingA(t *testing.T) (*harness, *providertest.Fake, *fakeServing) {
	f := providertest.NewFake()
	set(f, "A", "one")
	h := setup(t, one(f), "A")
	h.job.Watch.OnChange = ActionRolling
	srv := &fakeServing{readyAfter: 2 * time.Second}
	h.serving = srv
	return h, f, srv
}

func TestRollingStartsTheNewChildBeforeStoppingTheOld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f, srv := rollingA(t)
		h.run()
		// The first child gets clients once it is ready, too.
		after(2*time.Second - time.Millisecond)
		if srv.serving() != 0 {
			t.Fatalf("clients go to port %d before the first child is ready", srv.serving())
		}
		after(time.Millisecond)
		if srv.serving() != 9000 {
			t.Fatalf("clients go to port %d, want the first child's", srv.serving())
		}
		set(f, "A", "uno")
		after(1250 * time.Millisecond) // seen at 3s, read at 3.25s
		kids := h.children()
		if len(kids) != 2 {
			t.Fatalf("%d children, want the new one beside the old; log:\n%s", len(kids), h.log)
		}
		if envValue(kids[1].env, "A") != "uno" || envValue(kids[1].env, "PORT") != "9001" || envValue(kids[0].env, "PORT") != "9000" {
			t.Errorf("new child has A=%q PORT=%q", envValue(kids[1].env, "A"), envValue(kids[1].env, "PORT"))
		}
		after(2*time.Second - time.Millisecond)
		if len(kids[0].got()) != 0 || srv.serving() != 9000 {
			t.Fatalf("the old child was stopped, or clients moved, before the new one was ready")
		}
		after(time.Millisecond)
		if srv.serving() != 9001 {
			t.Errorf("clients go to port %d once the new child is ready, want 9001", srv.serving())
		}
		if got := kids[0].got(); !slices.Equal(got, []os.Signal{sigTERM}) {
			t.Errorf("old child got %v, want the stop signal once the new one was ready", got)
		}
		if got := srv.released(); !slices.Equal(got, []int{9000}) {
			t.Errorf("released ports %v, want the old child's", got)
		}
		for _, msg := range []string{
			`rotation: fake "f" A v1→v2; started pid 101 beside pid 100, waiting until it is ready (on_change: rolling)`,
			"rotation: pid 101 is ready and serves; stopping pid 100",
			"rotation: pid 100 stopped",
		} {
			if h.log.count(msg) != 1 {
				t.Errorf("missing %q; log:\n%s", msg, h.log)
			}
		}
		// The new child is the current one: its exit ends the run.
		if o := h.end(4); o.status != 4 || o.err != nil {
			t.Errorf("Run returned %d, %v", o.status, o.err)
		}
	})
}

func TestRollingRollsBackAChildThatExits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f, srv := rollingA(t)
		h.exitAtStart = func(env []string) status {
			if envValue(env, "A") == "bad" {
				return 1
			}
			return 0
		}
		h.run()
		set(f, "A", "bad")
		after(1250 * time.Millisecond)
		if n := len(h.children()); n != 2 {
			t.Fatalf("%d children; log:\n%s", n, h.log)
		}
		old := h.children()[0]
		msg := `rotation: rollout of fake "f" A v1→v2 failed: pid 101 exited with status 1 before it was ready; pid 100 keeps serving with the secrets it has, retrying in 1s`
		if h.log.count(msg) != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		// Retried after 1s, then 2s, 4s: the child refuses every time.
		after(7*time.Second + time.Millisecond)
		var starts []time.Duration
		for _, k := range h.children()[1:] {
			starts = append(starts, k.startedAt.Sub(h.started))
		}
		if want := ms(1250, 2250, 4250, 8250); !slices.Equal(starts, want) {
			t.Errorf("rollouts at %v, want %v", starts, want)
		}
		if len(old.got()) != 0 || srv.serving() != 9000 {
			t.Fatalf("the old child was touched, or clients moved, by a failed rollout")
		}
		// A good value goes through at once.
		set(f, "A", "good")
		after(5 * time.Second)
		if srv.serving() == 9000 || envValue(h.current().env, "A") != "good" || !slices.Equal(old.got(), []os.Signal{sigTERM}) {
			t.Fatalf("the good rotation did not roll out; log:\n%s", h.log)
		}
		h.end(0)
	})
}

func TestRollingRollsBackAChildNotReadyInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f, srv := rollingA(t)
		srv.readyAfter = -1
		h.readyTimeout = 5 * time.Second
		h.run()
		set(f, "A", "uno")
		after(1250*time.Millisecond + 5*time.Second)
		kids := h.children()
		if len(kids) != 2 {
			t.Fatalf("%d children", len(kids))
		}
		if !slices.Equal(kids[1].got(), []os.Signal{sigTERM}) || len(kids[0].got()) != 0 {
			t.Errorf("new child got %v, old %v: want the new one stopped and the old untouched", kids[1].got(), kids[0].got())
		}
		if h.log.count("failed: pid 101 was not ready within 5s: context deadline exceeded; pid 100 keeps serving") != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		if srv.serving() != 9000 {
			t.Errorf("clients moved to %d", srv.serving())
		}
		if got := srv.released(); !slices.Equal(got, []int{9001}) {
			t.Errorf("released %v, want the rolled back child's port", got)
		}
		kids[0].exit(0)
		synctest.Wait()
		if o, ok := h.returned(); !ok || o.status != 0 {
			t.Errorf("Run returned %v, %v after the serving child exited", o, ok)
		}
	})
}

// A rotation during a rollout waits for it, then rolls out the newest
// secrets.
func TestRollingSecondRotationDuringARollout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := providertest.NewFake()
		set(f, "A", "one")
		set(f, "B", "two")
		h := setup(t, one(f), "A", "B")
		h.job.Watch.OnChange = ActionRolling
		srv := &fakeServing{readyAfter: 2 * time.Second}
		h.serving = srv
		h.run()
		set(f, "A", "uno")
		after(1500 * time.Millisecond) // rollout of A from 1.25s
		set(f, "B", "dos")             // seen at 2.25s, read at 2.5s
		after(time.Second + time.Millisecond)
		if n := len(h.children()); n != 2 {
			t.Fatalf("%d children: a second rollout started during the first; log:\n%s", n, h.log)
		}
		if h.log.count("rolled out after the rollout in progress") != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		// The first is ready at 3.25s; the second starts a restart gap
		// (the interval) later, at 4.25s, and is ready at 6.25s.
		after(4 * time.Second)
		kids := h.children()
		if len(kids) != 3 {
			t.Fatalf("%d children, want a second rollout; log:\n%s", len(kids), h.log)
		}
		if at := kids[2].startedAt.Sub(h.started); at != 4250*time.Millisecond {
			t.Errorf("second rollout at %v, want 4.25s", at)
		}
		if a, b := envValue(kids[2].env, "A"), envValue(kids[2].env, "B"); a != "uno" || b != "dos" {
			t.Errorf("last child has A=%q B=%q, want both new", a, b)
		}
		if srv.serving() != 9002 || !slices.Equal(kids[1].got(), []os.Signal{sigTERM}) {
			t.Errorf("clients at %d, second child got %v", srv.serving(), kids[1].got())
		}
		h.end(0)
	})
}

// The current child's own exit ends secretrun, as in every mode: the new
// child is stopped first.
func TestRollingCurrentChildExitDuringARollout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f, _ := rollingA(t)
		h.run()
		set(f, "A", "uno")
		after(1500 * time.Millisecond)
		kids := h.children()
		kids[0].exit(3)
		synctest.Wait()
		o, ok := h.returned()
		if !ok {
			t.Fatalf("still running; log:\n%s", h.log)
		}
		if o.status != 3 || o.err != nil {
			t.Errorf("Run returned %d, %v; want the current child's 3", o.status, o.err)
		}
		if got := kids[1].got(); !slices.Equal(got, []os.Signal{sigTERM}) {
			t.Errorf("new child got %v, want it stopped", got)
		}
	})
}

// Run returns only once a child being stopped has gone.
func TestRollingWaitsForRetiringChildren(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f, _ := rollingA(t)
		h.ignore = true // every child takes the whole stop timeout
		h.run()
		set(f, "A", "uno")
		after(3250 * time.Millisecond) // the old child is retiring
		h.current().exit(0)
		synctest.Wait()
		if _, ok := h.returned(); ok {
			t.Fatalf("returned while a child was still being stopped")
		}
		after(5 * time.Second) // killed at the stop timeout
		o, ok := h.returned()
		if !ok || o.status != 0 {
			t.Fatalf("Run returned %v, %v; log:\n%s", o, ok, h.log)
		}
		if h.log.count("rotation: pid 100 did not stop within 5s of SIGTERM; killing it") != 1 {
			t.Errorf("log:\n%s", h.log)
		}
	})
}

func TestRollingUserSignalEndsEveryChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f, _ := rollingA(t)
		h.run()
		set(f, "A", "uno")
		after(1500 * time.Millisecond)
		h.sigs <- sigTERM
		synctest.Wait()
		o, ok := h.returned()
		if !ok || o.status != 143 {
			t.Fatalf("Run returned %v, %v; want the current child's 143", o, ok)
		}
		for _, k := range h.children() {
			if got := k.got(); len(got) == 0 || got[0] != sigTERM {
				t.Errorf("pid %d got %v, want SIGTERM", k.id, got)
			}
		}
		if n := len(h.children()); n != 2 {
			t.Errorf("%d children", n)
		}
	})
}

// With restart, one child at a time: clients wait while none serves and
// then go to the new one.
func TestRestartMovesClientsToTheNewChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := watchedA(t)
		srv := &fakeServing{}
		h.serving = srv
		h.ignore = true
		h.run()
		set(f, "A", "uno")
		after(1250 * time.Millisecond)
		if srv.serving() != 9000 {
			t.Errorf("clients moved before the old child stopped")
		}
		after(5 * time.Second)
		if srv.serving() != 9001 || len(h.children()) != 2 {
			t.Errorf("clients at %d after the restart, want the new child's port", srv.serving())
		}
		if got := srv.released(); !slices.Equal(got, []int{9000}) {
			t.Errorf("released %v", got)
		}
		h.end(0)
	})
}
