package inject

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secretrun/secretrun/providers/providertest"
)

// watchedA is a job watching one secret A of provider "f".
func watchedA(t *testing.T) (*harness, *providertest.Fake) {
	f := providertest.NewFake()
	set(f, "A", "one")
	return setup(t, one(f), "A"), f
}

func TestWatchSignalMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := watchedA(t)
		h.job.Watch.OnChange = ActionSignal
		var rotated []*Secrets
		h.onRotate = func(s *Secrets) { rotated = append(rotated, s) }
		h.run()
		set(f, "A", "uno")
		after(2 * time.Second)
		kids := h.children()
		if len(kids) != 1 {
			t.Fatalf("signal mode started %d children", len(kids))
		}
		if got := kids[0].got(); !slices.Equal(got, []os.Signal{sigHUP}) {
			t.Errorf("child got %v, want SIGHUP", got)
		}
		if len(rotated) != 1 || rotated[0].Vars[0].Value.Reveal() != "uno" {
			t.Errorf("OnRotate was not given the new secrets")
		}
		if n := h.log.count(`rotation: fake "f" A v1→v2; sending SIGHUP to pid 100`); n != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		h.end(0)
	})
}

func TestWatchExitMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := watchedA(t)
		h.job.Watch.OnChange = ActionExit
		h.run()
		set(f, "A", "uno")
		after(2 * time.Second)
		o, ok := h.returned()
		if !ok {
			t.Fatalf("still running; log:\n%s", h.log)
		}
		if o.status != ExitRotated || o.err != nil {
			t.Errorf("Run returned %d, %v; want status %d", o.status, o.err, ExitRotated)
		}
		kids := h.children()
		if len(kids) != 1 || !slices.Equal(kids[0].got(), []os.Signal{sigTERM}) {
			t.Errorf("want the one child stopped with SIGTERM")
		}
		if h.log.count("stopping pid 100 and exiting (on_change: exit)") != 1 {
			t.Errorf("log:\n%s", h.log)
		}
	})
}

func TestWatchNoneMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := watchedA(t)
		h.job.Watch.OnChange = ActionNone
		h.run()
		set(f, "A", "uno")
		after(2 * time.Second)
		if kids := h.children(); len(kids) != 1 || len(kids[0].got()) != 0 {
			t.Errorf("on_change: none touched the child")
		}
		if h.log.count(`rotation: fake "f" A v1→v2; pid 100 keeps its environment (on_change: none)`) != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		h.end(0)
	})
}

func TestWatchKillsAChildThatDoesNotStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := watchedA(t)
		h.ignore = true
		h.run()
		set(f, "A", "uno")
		after(1250 * time.Millisecond) // the stop signal is sent
		if got := h.children()[0].got(); !slices.Equal(got, []os.Signal{sigTERM}) {
			t.Fatalf("got %v", got)
		}
		after(5*time.Second - time.Millisecond)
		if len(h.children()) != 1 {
			t.Fatalf("replaced before the stop timeout")
		}
		after(time.Millisecond)
		if len(h.children()) != 2 {
			t.Fatalf("not killed after the stop timeout; log:\n%s", h.log)
		}
		if h.log.count("restart: pid 100 did not stop within 5s of SIGTERM; killing it") != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		h.end(0)
	})
}

func TestWatchSplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := watchedA(t)
		h.job.Watch.Splay = 10 * time.Second // rand 0.5: 5s
		h.run()
		set(f, "A", "uno")
		after(1250*time.Millisecond + 5*time.Second - time.Millisecond)
		if len(h.children()) != 1 {
			t.Fatalf("restarted before the splay")
		}
		after(time.Millisecond)
		if len(h.children()) != 2 {
			t.Fatalf("not restarted after the splay")
		}
		h.end(0)
	})
}

func TestWatchSpacesRestartsOfAFlappingSecret(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := providertest.NewFake()
		set(f, "A", "0")
		h := setup(t, one(f), "A")
		h.run()
		// A new value before every poll, for a minute.
		for i := 1; i <= 60; i++ {
			set(f, "A", fmt.Sprint(i))
			after(time.Second)
		}
		kids := h.children()
		var got []time.Duration
		for i := 2; i < len(kids); i++ {
			got = append(got, kids[i].startedAt.Sub(kids[i-1].startedAt))
		}
		// The first restart at 1.25s; then each gap is at least twice the
		// one before, the poll and settling rounding it up.
		want := ms(1000, 2000, 4000, 8000, 16000, 32000)
		if len(got) > len(want) || len(got) < len(want)-1 {
			t.Fatalf("restart gaps %v, want about %v; log:\n%s", got, want, h.log)
		}
		for i, g := range got {
			if g < want[i] || g > want[i]+1500*time.Millisecond {
				t.Errorf("restart gap %d is %v, want %v (up to a poll more)", i, g, want[i])
			}
		}
		if h.log.count("restart held back") == 0 {
			t.Errorf("no restart was held back; log:\n%s", h.log)
		}
		// The last child has the last value read.
		if v := envValue(h.current().env, "A"); v == "0" {
			t.Errorf("A=%q", v)
		}
		h.end(0)
	})
}

func TestWatchTerminatingSignalCancelsRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := watchedA(t)
		h.ignore = true
		h.run()
		set(f, "A", "uno")
		after(1300 * time.Millisecond) // stopping, the child ignores TERM
		h.sigs <- sigUSR1
		synctest.Wait()
		h.sigs <- sigTERM // from outside: the user wants it gone
		synctest.Wait()
		after(5 * time.Second) // killed at the stop timeout
		o, ok := h.returned()
		if !ok {
			t.Fatalf("still running; log:\n%s", h.log)
		}
		if o.status != 137 || o.err != nil {
			t.Errorf("Run returned %d, %v; want the child's status", o.status, o.err)
		}
		if n := len(h.children()); n != 1 {
			t.Errorf("%d children: a child was started after the user's SIGTERM", n)
		}
		if got := h.children()[0].got(); !slices.Equal(got, []os.Signal{sigTERM, sigUSR1, sigTERM}) {
			t.Errorf("child got %v", got)
		}
	})
}

// A rotation that arrives while a restart is in progress is not lost: the
// child that starts gets the newest secrets.
func TestWatchRotationDuringRestartGoesToTheNewChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := providertest.NewFake()
		set(f, "A", "one")
		set(f, "B", "two")
		h := setup(t, one(f), "A", "B")
		h.ignore = true // the first child takes the whole stop timeout
		h.run()
		set(f, "A", "uno")
		after(1250 * time.Millisecond)
		h.ignore = false
		set(f, "B", "dos")
		after(3 * time.Second) // seen and read while the first child stops
		if len(h.children()) != 1 {
			t.Fatalf("started a child before the old one stopped")
		}
		after(2 * time.Second) // killed at 6.25s
		kids := h.children()
		if len(kids) != 2 {
			t.Fatalf("%d children, want one restart; log:\n%s", len(kids), h.log)
		}
		if a, b := envValue(kids[1].env, "A"), envValue(kids[1].env, "B"); a != "uno" || b != "dos" {
			t.Errorf("new child has A=%q B=%q, want both new values", a, b)
		}
		if h.log.count("the restart in progress takes it") != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		h.end(0)
	})
}

func TestWatchForwardsSignalsToTheCurrentChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := watchedA(t)
		h.run()
		set(f, "A", "uno")
		after(2 * time.Second)
		h.sigs <- sigUSR1
		synctest.Wait()
		kids := h.children()
		if len(kids) != 2 || !slices.Equal(kids[1].got(), []os.Signal{sigUSR1}) {
			t.Errorf("the new child did not get the forwarded signal")
		}
		if o := h.end(9); o.status != 9 {
			t.Errorf("status %d", o.status)
		}
	})
}
