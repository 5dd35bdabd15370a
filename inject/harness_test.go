package inject

import (
	"context"
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
	"github.com/secretrun/secretrun/providers/providertest"
)

// The run engine (pollers, watcher, renewers, supervisor) runs here against
// in-memory backends (providertest.Fake) and fake processes, inside
// synctest bubbles: time is virtual, so the tests check exact timings
// without sleeping for real.

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

// harness runs a job's engine (everything Run starts beside the child) and
// its supervisor over fake backends and fake processes.
type harness struct {
	t   *testing.T
	job *Job
	// onRotate sees the secrets of every rotation.
	onRotate func(*Secrets)
	log      *records
	sigs     chan os.Signal
	mu       sync.Mutex
	procs    []*fakeProc
	result   chan outcome
	ignore   bool // new children ignore SIGTERM
	started  time.Time
	// serving and readyTimeout are given to the supervisor (rolling).
	serving      serving
	readyTimeout time.Duration
	// exitAtStart, when set, makes a child exit at once with the status
	// it returns, if not zero: a child that refuses its secrets.
	exitAtStart func(env []string) status
}

type outcome struct {
	status int
	err    error
}

// set stores a one-field secret at path whose field, and so the variable,
// is named path too.
func set(f *providertest.Fake, path, value string) {
	f.Set(path, map[string]string{path: value})
}

// setup prepares a job reading paths from provider "f", watched every
// second with on_change: restart; tests adjust the job before run. Each
// path may name another provider, "g:B", taken from provs.
func setup(t *testing.T, provs map[string]providers.Provider, paths ...string) *harness {
	h := &harness{t: t, log: &records{}, sigs: make(chan os.Signal, 1), result: make(chan outcome, 1)}
	names := map[string]string{}
	for name, p := range provs {
		names[name] = fmt.Sprint(p)
	}
	var sources []*providers.Source
	for _, p := range paths {
		prov, path, ok := strings.Cut(p, ":")
		if !ok {
			prov, path = "f", p
		}
		sources = append(sources, &providers.Source{Provider: prov, Ref: providertest.Ref(path), Pos: "secretrun.yaml:1:1"})
	}
	h.job = &Job{
		Args:      []string{"app"},
		Sources:   sources,
		Providers: provs,
		Names:     names,
		Environ:   []string{"PATH=/bin"},
		Watch:     &Watch{Interval: time.Second, OnChange: ActionRestart, Signal: sigHUP},
		rand:      func() float64 { return 0.5 },
	}
	return h
}

// one is a single fake backend as provider "f".
func one(f *providertest.Fake) map[string]providers.Provider {
	return map[string]providers.Provider{"f": f.Provider("f")}
}

func (h *harness) launch(env []string) (process, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := &fakeProc{id: 100 + len(h.procs), env: env, ignoreTerm: h.ignore, done: make(chan status, 1), startedAt: time.Now()}
	h.procs = append(h.procs, p)
	if h.exitAtStart != nil {
		if st := h.exitAtStart(env); st != 0 {
			p.exit(st)
		}
	}
	return p, nil
}

// run fetches the secrets and starts the engine and the supervisor as Run
// does, with fake processes.
func (h *harness) run() {
	j := h.job
	h.started = time.Now()
	initial, err := Resolve(context.Background(), j.Sources, j.Providers)
	if err != nil {
		h.t.Fatal(err)
	}
	environ := func(s *Secrets) []string { return Environ(j.Environ, s.Vars, false) }
	log := slog.New(h.log)
	sup := &Supervisor{
		Command:    Command{Args: j.Args, Env: environ(initial)},
		StopSignal: sigTERM, StopTimeout: 5 * time.Second,
		Log: log, serving: h.serving, ReadyTimeout: h.readyTimeout,
	}
	onRotate := func(s *Secrets) {
		if h.onRotate != nil {
			h.onRotate(s)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	// A test that fails half-way leaves nothing running in the bubble.
	h.t.Cleanup(func() {
		cancel()
		for _, p := range h.children() {
			p.exit(0)
		}
	})
	var wg sync.WaitGroup
	j.start(ctx, &wg, sup, initial, environ, onRotate, log)
	l := loop{
		launch:      h.launch,
		sigs:        h.sigs,
		forward:     func(os.Signal) bool { return true },
		terminating: func(sig os.Signal) bool { return sig == sigTERM },
	}
	go func() {
		st, err := sup.supervise(l)
		cancel()
		wg.Wait()
		CloseProviders(j.Providers, j.Names, log)
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

// end makes the current child exit and returns what the run returned.
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

// returned is the outcome, if the run has returned.
func (h *harness) returned() (outcome, bool) {
	select {
	case o := <-h.result:
		return o, true
	default:
		return outcome{}, false
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

// since lists the times relative to start.
func since(start time.Time, ts []time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.Sub(start)
	}
	return out
}

// gaps lists the time between consecutive calls made after from.
func gaps(ts []time.Time, from time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(ts); i++ {
		if ts[i].After(from) {
			out = append(out, ts[i].Sub(ts[i-1]))
		}
	}
	return out
}

func ms(ns ...time.Duration) []time.Duration {
	for i := range ns {
		ns[i] *= time.Millisecond
	}
	return ns
}
