package inject

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// The watch loop and the supervisor run here against an in-memory backend
// and fake processes, inside synctest bubbles: time is virtual, so the
// tests check exact timings without sleeping for real.

// backend is an in-memory secret store with version counters and leases.
type backend struct {
	mu       sync.Mutex
	values   map[string]string
	versions map[string]int
	expires  map[string]time.Time
	down     error
	// versionsAt and fetchesAt record when each call was made.
	versionsAt, fetchesAt []time.Time
}

func newBackend(values map[string]string) *backend {
	b := &backend{values: map[string]string{}, versions: map[string]int{}, expires: map[string]time.Time{}}
	for k, v := range values {
		b.set(k, v)
	}
	return b
}

func (b *backend) set(path, value string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.values[path] = value
	b.versions[path]++
}

// touch makes a new version with the same value.
func (b *backend) touch(path string) { b.set(path, b.get(path)) }

func (b *backend) get(path string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.values[path]
}

func (b *backend) setDown(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = err
}

func (b *backend) lease(path string, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expires[path] = until
}

func (b *backend) calls() (versions, fetches []time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.versionsAt), slices.Clone(b.fetchesAt)
}

type ref string

func (r ref) String() string { return string(r) }

// versioned is a provider with a Versioner; plain is one without.
type versioned struct{ *plain }

type plain struct {
	b    *backend
	name string
}

func (p *plain) String() string { return fmt.Sprintf("fake %q", p.name) }

func (p *plain) ParseSource(*providers.Source, providers.Options) (providers.Ref, error) {
	return nil, errors.New("not used")
}

func (p *plain) Fetch(ctx context.Context, sources []*providers.Source) ([]providers.Result, error) {
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fetchesAt = append(b.fetchesAt, time.Now())
	if b.down != nil {
		return nil, fmt.Errorf("fake %q: %w: %w", p.name, providers.ErrUnavailable, b.down)
	}
	out := make([]providers.Result, len(sources))
	for i, src := range sources {
		path := src.Ref.String()
		v, ok := b.values[path]
		if !ok {
			out[i].Err = fmt.Errorf("fake %q: read %s: %w", p.name, path, providers.ErrNotFound)
			continue
		}
		out[i] = providers.Result{
			Fields:  map[string]providers.Field{path: {Value: providers.NewSecret(v)}},
			Version: fmt.Sprint(b.versions[path]),
			Expires: b.expires[path],
		}
	}
	return out, nil
}

func (p *versioned) Versions(ctx context.Context, sources []*providers.Source) ([]string, error) {
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.versionsAt = append(b.versionsAt, time.Now())
	if b.down != nil {
		return nil, fmt.Errorf("fake %q: %w: %w", p.name, providers.ErrUnavailable, b.down)
	}
	out := make([]string, len(sources))
	for i, src := range sources {
		if n, ok := b.versions[src.Ref.String()]; ok {
			out[i] = fmt.Sprint(n)
		}
	}
	return out, nil
}

// testSignal is a signal the fake processes understand on every OS.
type testSignal string

func (s testSignal) String() string { return string(s) }
func (s testSignal) Signal()        {}

const (
	sigTERM = testSignal("SIGTERM")
	sigHUP  = testSignal("SIGHUP")
	sigUSR1 = testSignal("SIGUSR1")
)

// fakeProc is a child that records the signals it gets and exits on
// SIGTERM unless it ignores it.
type fakeProc struct {
	id         int
	env        []string
	startedAt  time.Time
	ignoreTerm bool
	mu         sync.Mutex
	signals    []os.Signal
	done       chan status
	ended      bool
}

func (p *fakeProc) pid() int              { return p.id }
func (p *fakeProc) exited() <-chan status { return p.done }
func (p *fakeProc) finish(time.Duration)  {}
func (p *fakeProc) kill() error           { p.exit(137); return nil }

func (p *fakeProc) signal(sig os.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	ignore := p.ignoreTerm
	p.mu.Unlock()
	if sig == sigTERM && !ignore {
		p.exit(143)
	}
	return nil
}

func (p *fakeProc) exit(st status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ended {
		p.ended = true
		p.done <- st
	}
}

func (p *fakeProc) got() []os.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.signals)
}

// records keeps the messages logged.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}

func (r *records) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

func (r *records) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

// harness runs a supervisor with a watcher over a backend.
type harness struct {
	t       *testing.T
	b       *backend
	w       *Watch
	s       *Supervisor
	log     *records
	sigs    chan os.Signal
	mu      sync.Mutex
	procs   []*fakeProc
	result  chan outcome
	ignore  bool // new children ignore SIGTERM
	started time.Time
}

type outcome struct {
	status int
	err    error
}

// setup prepares a supervisor watching paths of b; options adjust the
// watch before it starts.
func setup(t *testing.T, b *backend, withVersions bool, paths ...string) *harness {
	h := &harness{t: t, b: b, log: &records{}, sigs: make(chan os.Signal, 1), result: make(chan outcome, 1)}
	var prov providers.Provider = &plain{b: b, name: "f"}
	if withVersions {
		prov = &versioned{plain: &plain{b: b, name: "f"}}
	}
	provs := map[string]providers.Provider{"f": prov}
	var sources []*providers.Source
	for _, p := range paths {
		sources = append(sources, &providers.Source{Provider: "f", Ref: ref(p), Pos: "secretrun.yaml:1:1"})
	}
	initial, err := Resolve(context.Background(), sources, provs)
	if err != nil {
		t.Fatal(err)
	}
	environ := func(s *Secrets) []string { return Environ([]string{"PATH=/bin"}, s.Vars, false) }
	h.w = &Watch{
		Sources: sources, Providers: provs, Initial: initial, Environ: environ,
		Interval: time.Second, OnChange: ActionRestart, Signal: sigHUP,
		rand: func() float64 { return 0.5 },
	}
	h.s = &Supervisor{
		Command:    Command{Args: []string{"app"}, Env: environ(initial)},
		StopSignal: sigTERM, StopTimeout: 5 * time.Second,
		Watch: h.w, Log: slog.New(h.log),
	}
	return h
}

func (h *harness) launch(env []string) (process, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := &fakeProc{id: 100 + len(h.procs), env: env, ignoreTerm: h.ignore, done: make(chan status, 1), startedAt: time.Now()}
	h.procs = append(h.procs, p)
	return p, nil
}

func (h *harness) run() {
	h.started = time.Now()
	l := loop{
		launch:      h.launch,
		sigs:        h.sigs,
		forward:     func(os.Signal) bool { return true },
		terminating: func(sig os.Signal) bool { return sig == sigTERM },
	}
	stop := h.s.startWatcher(context.Background(), &l)
	go func() {
		st, err := h.s.supervise(l)
		stop()
		h.result <- outcome{st, err}
	}()
	synctest.Wait()
}

// children returns the processes started so far.
func (h *harness) children() []*fakeProc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.procs)
}

func (h *harness) current() *fakeProc {
	c := h.children()
	return c[len(c)-1]
}

// after advances virtual time by d and lets every goroutine settle.
func after(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// end makes the current child exit and returns what Run returned.
func (h *harness) end(st status) outcome {
	h.current().exit(st)
	synctest.Wait()
	select {
	case o := <-h.result:
		return o
	default:
		h.t.Fatal("the supervisor did not return after the child exited")
		return outcome{}
	}
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

func TestWatchPollsAtIntervalWithJitter(t *testing.T) {
	for _, tc := range []struct {
		rand float64
		gap  time.Duration
	}{
		{0.5, time.Second},
		{0, 900 * time.Millisecond},
		{0.99, 1098 * time.Millisecond},
	} {
		t.Run(fmt.Sprint(tc.rand), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBackend(map[string]string{"A": "one", "B": "two"})
				h := setup(t, b, true, "A", "B")
				h.w.rand = func() float64 { return tc.rand }
				h.run()
				after(5*time.Second + time.Millisecond)
				versions, fetches := b.calls()
				// One baseline right after the start, then one call per
				// poll for both sources. Values are read only by the
				// initial fetch and by the first poll, which checks that
				// nothing changed before the baseline was taken.
				if len(fetches) != 2 {
					t.Errorf("fetched %d times, want the initial fetch and the first poll's", len(fetches))
				} else if fetches[1] != versions[1] {
					t.Errorf("second fetch at %v, want at the first poll (%v)", fetches[1].Sub(h.started), versions[1].Sub(h.started))
				}
				if versions[0] != h.started {
					t.Errorf("baseline at %v, want right after the start", versions[0].Sub(h.started))
				}
				for i := 1; i < len(versions); i++ {
					if gap := versions[i].Sub(versions[i-1]); gap != tc.gap {
						t.Errorf("poll %d came %v after the previous, want %v", i, gap, tc.gap)
					}
				}
				if want := 1 + int(5*time.Second/tc.gap); len(versions) != want {
					t.Errorf("%d Versions calls in 5s, want %d", len(versions), want)
				}
				if len(h.children()) != 1 {
					t.Errorf("%d children started, want 1", len(h.children()))
				}
				if o := h.end(3); o.status != 3 || o.err != nil {
					t.Errorf("Run returned %d, %v; want the child's status 3", o.status, o.err)
				}
			})
		})
	}
}

func TestWatchRestartsOnRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one", "B": "two"})
		h := setup(t, b, true, "A", "B")
		h.run()
		after(300 * time.Millisecond)
		b.set("A", "uno")
		// Seen at the poll at 1s, settled after a quiet 250ms, then read.
		after(950*time.Millisecond - time.Millisecond)
		if n := len(h.children()); n != 1 {
			t.Fatalf("restarted before the change settled: %d children", n)
		}
		after(time.Millisecond)
		kids := h.children()
		if len(kids) != 2 {
			t.Fatalf("%d children, want a restart; log:\n%s", len(kids), h.log)
		}
		if got := kids[0].got(); !slices.Equal(got, []os.Signal{sigTERM}) {
			t.Errorf("old child got %v, want the stop signal", got)
		}
		if v := envValue(kids[1].env, "A"); v != "uno" {
			t.Errorf("new child has A=%q, want the new value", v)
		}
		if v := envValue(kids[1].env, "B"); v != "two" {
			t.Errorf("new child has B=%q", v)
		}
		if n := h.log.count(`rotation: fake "f" A v1→v2; restarting pid 100`); n != 1 {
			t.Errorf("rotation logged %d times; log:\n%s", n, h.log)
		}
		if strings.Contains(h.log.String(), "uno") {
			t.Error("a value reached the log")
		}
		// The child's own exit still ends the run with its status.
		if o := h.end(0); o.status != 0 || o.err != nil {
			t.Errorf("Run returned %d, %v", o.status, o.err)
		}
	})
}

func TestWatchDebouncesBursts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "1", "B": "1", "C": "1"})
		h := setup(t, b, true, "A", "B", "C")
		h.run()
		after(900 * time.Millisecond)
		b.set("A", "2") // seen by the poll at 1s
		after(200 * time.Millisecond)
		b.set("B", "2") // seen by the settling probe at 1.25s
		after(200 * time.Millisecond)
		b.set("C", "2") // seen by the one at 1.5s
		after(5 * time.Second)
		kids := h.children()
		if len(kids) != 2 {
			t.Fatalf("%d children, want one restart for the burst; log:\n%s", len(kids), h.log)
		}
		for _, name := range []string{"A", "B", "C"} {
			if v := envValue(kids[1].env, name); v != "2" {
				t.Errorf("%s=%q after the restart", name, v)
			}
		}
		_, fetches := b.calls()
		if len(fetches) != 3 {
			t.Errorf("%d fetches, want the initial one, the first poll's check and one re-read", len(fetches))
		}
		h.end(0)
	})
}

func TestWatchComparesValuesWithoutVersioner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one", "B": "two"})
		h := setup(t, b, false, "A", "B")
		h.run()
		after(3*time.Second + time.Millisecond)
		_, fetches := b.calls()
		// The initial fetch, then one per poll for both sources.
		if len(fetches) != 4 {
			t.Errorf("%d fetches in 3s, want 4", len(fetches))
		}
		b.touch("A") // a new version, the same value: nothing to do
		after(time.Second)
		if len(h.children()) != 1 {
			t.Errorf("restarted for an unchanged value")
		}
		b.set("B", "dos")
		after(2 * time.Second)
		kids := h.children()
		if len(kids) != 2 || envValue(kids[1].env, "B") != "dos" {
			t.Fatalf("no restart with the new value; log:\n%s", h.log)
		}
		h.end(0)
	})
}

func TestWatchIgnoresChangesOutsideTheEnvironment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, true, "A")
		h.run()
		after(1500 * time.Millisecond) // past the first poll, which compares values
		b.touch("A")
		after(3 * time.Second)
		if len(h.children()) != 1 {
			t.Errorf("restarted although the environment is the same")
		}
		_, fetches := b.calls()
		if len(fetches) != 3 {
			t.Errorf("%d fetches, want the initial one, the first poll's check and one re-read", len(fetches))
		}
		h.end(0)
	})
}

func TestWatchOutageKeepsChildAndBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, true, "A")
		h.run()
		after(1500 * time.Millisecond)
		b.setDown(errors.New("connection refused"))
		downAt := time.Now()
		after(30 * time.Second)
		versions, _ := b.calls()
		var gaps []time.Duration
		for i := 1; i < len(versions); i++ {
			if versions[i].After(downAt) {
				gaps = append(gaps, versions[i].Sub(versions[i-1]))
			}
		}
		// rand is 0.5: each delay is three quarters of 1s, 2s, 4s, 8s,
		// then of the ten-interval ceiling.
		want := []time.Duration{1000, 750, 1500, 3000, 6000, 7500, 7500}
		for i := range want {
			want[i] *= time.Millisecond
		}
		if !slices.Equal(gaps, want) {
			t.Errorf("polls during the outage came at intervals %v, want %v", gaps, want)
		}
		if n := h.log.count(`watch: fake "f" unreachable: fake "f": backend unavailable: connection refused; keeping current secrets`); n != 1 {
			t.Errorf("outage logged %d times, want once; log:\n%s", n, h.log)
		}
		if len(h.children()) != 1 || len(h.children()[0].got()) != 0 {
			t.Errorf("the outage touched the child")
		}

		b.set("A", "uno") // rotated while we could not see it
		b.setDown(nil)
		after(10 * time.Second)
		if n := h.log.count(`watch: fake "f" reachable again`); n != 1 {
			t.Errorf("recovery logged %d times; log:\n%s", n, h.log)
		}
		kids := h.children()
		if len(kids) != 2 || envValue(kids[1].env, "A") != "uno" {
			t.Fatalf("the rotation during the outage was not applied; log:\n%s", h.log)
		}
		// Back to the plain interval.
		versions, _ = b.calls()
		if gap := versions[len(versions)-1].Sub(versions[len(versions)-2]); gap != time.Second {
			t.Errorf("after recovery polls are %v apart, want 1s", gap)
		}
		h.end(0)
	})
}

func TestWatchFailedRefetchKeepsChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, false, "A")
		h.run()
		b.mu.Lock()
		delete(b.values, "A") // the secret is gone: the re-read fails
		b.mu.Unlock()
		after(5 * time.Second)
		if len(h.children()) != 1 || len(h.children()[0].got()) != 0 {
			t.Errorf("a failed re-read touched the child")
		}
		if n := h.log.count("watch: cannot read the secrets: secretrun.yaml:1:1: fake \"f\": read A: not found; keeping current secrets"); n != 1 {
			t.Errorf("logged %d times; log:\n%s", n, h.log)
		}
		h.end(0)
	})
}

func TestWatchSignalMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, true, "A")
		h.w.OnChange = ActionSignal
		var rotated []*Secrets
		h.w.OnRotate = func(s *Secrets) { rotated = append(rotated, s) }
		h.run()
		b.set("A", "uno")
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
		if n := h.log.count("rotation: fake \"f\" A v1→v2; sending SIGHUP to pid 100"); n != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		h.end(0)
	})
}

func TestWatchExitMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, true, "A")
		h.w.OnChange = ActionExit
		h.run()
		b.set("A", "uno")
		after(2 * time.Second)
		select {
		case o := <-h.result:
			if !errors.Is(o.err, ErrExitOnChange) {
				t.Errorf("Run returned %d, %v; want ErrExitOnChange", o.status, o.err)
			}
		default:
			t.Fatalf("still running; log:\n%s", h.log)
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
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, true, "A")
		h.w.OnChange = ActionNone
		h.run()
		b.set("A", "uno")
		after(2 * time.Second)
		if kids := h.children(); len(kids) != 1 || len(kids[0].got()) != 0 {
			t.Errorf("on_change: none touched the child")
		}
		if h.log.count("rotation: fake \"f\" A v1→v2; pid 100 keeps its environment (on_change: none)") != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		h.end(0)
	})
}

func TestWatchKillsAChildThatDoesNotStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, true, "A")
		h.ignore = true
		h.run()
		b.set("A", "uno")
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
		h.current().exit(0)
	})
}

func TestWatchSplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, true, "A")
		h.w.Splay = 10 * time.Second // rand 0.5: 5s
		h.run()
		b.set("A", "uno")
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
		b := newBackend(map[string]string{"A": "0"})
		h := setup(t, b, true, "A")
		h.run()
		// A new value before every poll, for a minute.
		for i := 1; i <= 60; i++ {
			b.set("A", fmt.Sprint(i))
			after(time.Second)
		}
		kids := h.children()
		var gaps []time.Duration
		for i := 2; i < len(kids); i++ {
			gaps = append(gaps, kids[i].startedAt.Sub(kids[i-1].startedAt))
		}
		// The first restart at 1.25s; then each gap is at least twice the
		// one before, the poll and settling rounding it up.
		want := []time.Duration{1000, 2000, 4000, 8000, 16000, 32000}
		for i := range want {
			want[i] *= time.Millisecond
		}
		if len(gaps) > len(want) || len(gaps) < len(want)-1 {
			t.Fatalf("restart gaps %v, want about %v; log:\n%s", gaps, want, h.log)
		}
		for i, g := range gaps {
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
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, true, "A")
		h.ignore = true
		h.run()
		b.set("A", "uno")
		after(1300 * time.Millisecond) // stopping, the child ignores TERM
		h.sigs <- sigUSR1
		synctest.Wait()
		h.sigs <- sigTERM // from outside: the user wants it gone
		synctest.Wait()
		after(5 * time.Second) // killed at the stop timeout
		select {
		case o := <-h.result:
			if o.status != 137 || o.err != nil {
				t.Errorf("Run returned %d, %v; want the child's status", o.status, o.err)
			}
		default:
			t.Fatalf("still running; log:\n%s", h.log)
		}
		if n := len(h.children()); n != 1 {
			t.Errorf("%d children: a child was started after the user's SIGTERM", n)
		}
		if got := h.children()[0].got(); !slices.Equal(got, []os.Signal{sigTERM, sigUSR1, sigTERM}) {
			t.Errorf("child got %v", got)
		}
	})
}

func TestWatchForwardsSignalsToTheCurrentChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, true, "A")
		h.run()
		b.set("A", "uno")
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

func TestWatchChecksLeasesBeforeTheyEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"DB": "user-1"})
		b.lease("DB", time.Now().Add(80*time.Second))
		h := setup(t, b, true, "DB")
		h.w.Interval = 5 * time.Minute
		h.run()
		// Checked at three quarters of its life, though the interval is
		// longer.
		after(60*time.Second - time.Millisecond)
		if _, f := b.calls(); len(f) != 1 {
			t.Fatalf("fetched %d times before the lease check", len(f))
		}
		// The provider renewed the lease meanwhile: same value, later end.
		b.lease("DB", time.Now().Add(80*time.Second))
		after(time.Millisecond)
		if _, f := b.calls(); len(f) != 2 {
			t.Fatalf("fetched %d times, want the lease check", len(f))
		}
		if len(h.children()) != 1 {
			t.Fatalf("a renewal restarted the child")
		}
		// The next check follows the new end: 60s after the renewal.
		after(60*time.Second - time.Millisecond)
		b.set("DB", "user-2") // could not renew: new credentials
		b.lease("DB", time.Now().Add(80*time.Second))
		after(time.Millisecond)
		after(time.Second)
		kids := h.children()
		if len(kids) != 2 || envValue(kids[1].env, "DB") != "user-2" {
			t.Fatalf("the replaced lease did not restart the child; log:\n%s", h.log)
		}
		if h.log.count("rotation: fake \"f\" DB v1→v2; restarting pid 100") != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		h.end(0)
	})
}

func TestWatchBaselineFailureComparesValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, true, "A")
		b.setDown(errors.New("down"))
		h.run() // the baseline fails
		b.setDown(nil)
		after(1500 * time.Millisecond)
		if len(h.children()) != 1 {
			t.Fatalf("an unknown baseline caused a restart")
		}
		_, f := b.calls()
		if len(f) != 2 {
			t.Fatalf("%d fetches, want the values compared once", len(f))
		}
		b.set("A", "uno")
		after(2 * time.Second)
		if len(h.children()) != 2 {
			t.Fatalf("not restarted")
		}
		h.end(0)
	})
}

func TestChangeString(t *testing.T) {
	for _, tc := range []struct {
		c    Change
		want string
	}{
		{Change{`vault "prod"`, "secret/myapp/api", "3", "4"}, `vault "prod" secret/myapp/api v3→v4`},
		{Change{`aws`, "prod/x", "a1b2", "c3d4"}, `aws prod/x a1b2→c3d4`},
		{Change{`keyring "local"`, "API", "", ""}, `keyring "local" API changed`},
		{Change{`vault "prod"`, "database/creds/app", "lease-1", "lease-2"}, `vault "prod" database/creds/app lease-1→lease-2`},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

// A secret written after the first fetch but before the watch has read its
// first labels must still restart the child: the first poll compares values.
func TestWatchSeesAWriteBeforeItsFirstLabels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBackend(map[string]string{"A": "one"})
		h := setup(t, b, true, "A")
		b.set("A", "uno")
		h.run()
		after(3 * time.Second)
		kids := h.children()
		h.end(0)
		if len(kids) != 2 {
			t.Fatalf("%d children, want a restart for the early write; log:\n%s", len(kids), h.log)
		}
		if v := envValue(kids[1].env, "A"); v != "uno" {
			t.Errorf("new child has A=%q, want the new value", v)
		}
	})
}
