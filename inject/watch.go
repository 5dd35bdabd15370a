package inject

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// Rotation
//
// With a Watch, the supervisor keeps polling the sources the child was
// started with and replaces the child's environment when they rotate:
//
//   - Every Interval, give or take a tenth at random so that a fleet started
//     together drifts apart, each provider is asked once, with all of its
//     sources, whether anything changed: providers.Versioner where the
//     provider implements it, a Fetch and a comparison of values for the
//     others and for the sources a Versioner cannot tell about (an empty
//     label). The first labels are taken right after the initial fetch.
//   - A change is left to settle: the labels are asked again after a short
//     quiet period (a quarter of the interval, at most a second) until two
//     answers agree, so that several secrets rotated together cost one
//     restart. Then every source is re-read at once, all or nothing, and the
//     child's environment rebuilt; when it differs, OnChange is applied.
//   - A failing backend never touches the child: the last good environment
//     stays, the outage is logged once when it starts and once when it ends,
//     and polls back off exponentially (with jitter) from the interval up to
//     ten intervals, at most five minutes.
//   - A leased secret (Result.Expires) is also checked at three quarters of
//     its remaining life, whatever the interval: its provider renews it or,
//     when it cannot, hands out new credentials, which is a rotation.
//   - Restarts are graceful (StopSignal, StopTimeout, then SIGKILL) and
//     spaced by restartGuard. secretrun never restarts a child that exited
//     by itself: its exit ends secretrun with its status, so a child that
//     crashes on new secrets cannot turn into a restart loop.

// Action is what happens to the child when its secrets rotate: the
// `on_change` setting.
type Action string

// The values of `on_change`.
const (
	// ActionRestart stops the child gracefully and starts it again with
	// the new environment.
	ActionRestart Action = "restart"
	// ActionSignal sends Watch.Signal to the child. A running process's
	// environment cannot be changed, so this is for programs that re-read
	// their secrets another way when signalled; the rotation is logged.
	ActionSignal Action = "signal"
	// ActionExit stops the child gracefully and makes Run return
	// ErrExitOnChange, for an orchestrator to restart secretrun.
	ActionExit Action = "exit"
	// ActionNone only logs the rotation.
	ActionNone Action = "none"
)

// Watch configures rotation: which sources to poll, how often, and what to
// do with the child when they change.
type Watch struct {
	Sources   []*providers.Source
	Providers map[string]providers.Provider
	// Names are the providers' names for messages, such as `vault "prod"`,
	// by instance name; a provider missing here is shown by its instance
	// name.
	Names map[string]string
	// Initial is what the child was started with.
	Initial *Secrets
	// Environ builds the child's environment from secrets, as it was built
	// for the first child.
	Environ func(*Secrets) []string
	// OnRotate, when set, is called with the new secrets before the child
	// is restarted or signalled with them, for instance to mask the new
	// values in the child's output too.
	OnRotate func(*Secrets)

	// Interval is the time between polls (30s when zero); sub-second
	// intervals are allowed.
	Interval time.Duration
	OnChange Action
	// Signal is sent to the child with ActionSignal.
	Signal os.Signal
	// Splay delays each action by a random time up to Splay, so that a
	// fleet that sees a rotation together does not restart together.
	Splay time.Duration

	// rand returns a number in [0, 1); tests make it predictable.
	rand func() float64
}

const (
	defaultInterval = 30 * time.Second
	// jitter is the fraction of the interval by which polls are moved at
	// random.
	jitter = 0.1
	// maxSettle bounds the quiet periods a burst of changes may take, in
	// multiples of the quiet period.
	maxSettle = 4
	// maxBackoff caps the retry delay of an outage.
	maxBackoff = 5 * time.Minute
	// minDelay keeps a lease deadline that is due from spinning the loop.
	minDelay = 10 * time.Millisecond
	// pollTimeout bounds a poll, re-read included, unless the interval is
	// longer.
	pollTimeout = 30 * time.Second
)

func (w *Watch) random() float64 {
	if w.rand != nil {
		return w.rand()
	}
	return rand.Float64()
}

func (w *Watch) interval() time.Duration {
	if w.Interval <= 0 {
		return defaultInterval
	}
	return w.Interval
}

// quiet is how long a change is left to settle before the sources are read.
func (w *Watch) quiet() time.Duration {
	return min(time.Second, w.interval()/4)
}

func (w *Watch) rotated(s *Secrets) {
	if w.OnRotate != nil {
		w.OnRotate(s)
	}
}

// Change is one source whose values changed, for messages. It holds no
// value.
type Change struct {
	// Provider is the provider's name for messages: `vault "prod"`.
	Provider string
	// Source is what the source reads: secret/myapp/api.
	Source string
	// From and To are the versions before and after, when the backend has
	// versions.
	From, To string
}

// String reads `vault "prod" secret/myapp/api v3→v4`.
func (c Change) String() string {
	s := c.Provider + " " + c.Source
	if c.From == "" && c.To == "" || c.From == c.To {
		return s + " changed"
	}
	return s + " " + versionLabel(c.From) + "→" + versionLabel(c.To)
}

// versionLabel shows a numeric version as v3 and anything else as it is.
func versionLabel(v string) string {
	if v == "" {
		return "?"
	}
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return v
		}
	}
	return "v" + v
}

// rotation is a new environment for the child and why.
type rotation struct {
	secrets *Secrets
	env     []string
	changes []Change
}

func (r *rotation) describe() string {
	parts := make([]string, len(r.changes))
	for i, c := range r.changes {
		parts[i] = c.String()
	}
	if len(parts) == 0 {
		return "the secrets changed"
	}
	return strings.Join(parts, ", ")
}

func (r *rotation) attrs(action string, pid int) []any {
	changes := make([]any, len(r.changes))
	for i, c := range r.changes {
		changes[i] = map[string]string{"provider": c.Provider, "source": c.Source, "from": c.From, "to": c.To}
	}
	return []any{slog.String("event", "rotation"), slog.String("action", action), slog.Int("pid", pid), slog.Any("changes", changes)}
}

// merge folds a newer rotation into r: the newer secrets win, and the
// changes of both are kept, each source once with its first From.
func (r *rotation) merge(newer *rotation) *rotation {
	if r == nil {
		return newer
	}
	out := &rotation{secrets: newer.secrets, env: newer.env, changes: append([]Change(nil), r.changes...)}
	for _, c := range newer.changes {
		found := false
		for i, o := range out.changes {
			if o.Provider == c.Provider && o.Source == c.Source {
				out.changes[i].To = c.To
				found = true
			}
		}
		if !found {
			out.changes = append(out.changes, c)
		}
	}
	return out
}

// group is one provider and the indices of its sources.
type group struct {
	name string
	prov providers.Provider
	idx  []int
}

func (g *group) sources(all []*providers.Source, idx []int) []*providers.Source {
	out := make([]*providers.Source, len(idx))
	for j, i := range idx {
		out[j] = all[i]
	}
	return out
}

// watcher polls the sources and reports rotations. It is the only
// goroutine that touches its fields.
type watcher struct {
	w      *Watch
	log    *slog.Logger
	groups []*group
	// labels are the versions the current secrets were read at, per
	// source; "" when unknown, which makes a poll compare values.
	labels  []string
	current *Secrets
	env     []string
	// leaseCheck is when a leased source is next checked, per source;
	// zero for sources without a lease.
	leaseCheck []time.Time
	// failing holds the problems being reported, by provider name (or
	// sourceProblem), so each is logged once.
	failing  map[string]bool
	failures int
	// verified is set once a poll has compared every source's values with
	// the secrets the child started with. The first labels are read after
	// that first fetch, so a write in between changes no label: only the
	// values show it.
	verified bool
}

// sourceProblem keys a failure to assemble the secrets, as opposed to a
// provider's outage.
const sourceProblem = ""

func newWatcher(w *Watch, log *slog.Logger) *watcher {
	wt := &watcher{w: w, log: log, failing: map[string]bool{}, current: w.Initial}
	byName := map[string]*group{}
	for i, src := range w.Sources {
		g := byName[src.Provider]
		if g == nil {
			g = &group{name: src.Provider, prov: w.Providers[src.Provider]}
			byName[src.Provider] = g
			wt.groups = append(wt.groups, g)
		}
		g.idx = append(g.idx, i)
	}
	wt.labels = make([]string, len(w.Sources))
	wt.env = w.Environ(w.Initial)
	wt.leaseCheck = make([]time.Time, len(w.Sources))
	now := time.Now()
	for i := range w.Sources {
		wt.setLeaseCheck(i, now)
	}
	return wt
}

func (wt *watcher) name(provider string) string {
	if n, ok := wt.w.Names[provider]; ok {
		return n
	}
	if s, ok := wt.w.Providers[provider].(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%q", provider)
}

// setLeaseCheck schedules the check of a leased source at three quarters of
// its remaining life: after the provider's own renewal point, well before
// the end.
func (wt *watcher) setLeaseCheck(i int, now time.Time) {
	wt.leaseCheck[i] = time.Time{}
	if i >= len(wt.current.Results) {
		return
	}
	exp := wt.current.Results[i].Expires
	if exp.IsZero() || !exp.After(now) {
		return
	}
	wt.leaseCheck[i] = now.Add(exp.Sub(now) * 3 / 4)
}

// run polls until ctx ends, sending rotations to out.
func (wt *watcher) run(ctx context.Context, out chan<- rotation) {
	wt.baseline(ctx)
	for {
		t := time.NewTimer(wt.nextDelay(time.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		// A backend that hangs fails the poll instead of stopping the
		// watch: the next poll tries again.
		pctx, cancel := context.WithTimeout(ctx, max(2*wt.w.interval(), pollTimeout))
		r, ok := wt.poll(pctx)
		cancel()
		if !ok {
			continue
		}
		select {
		case out <- r:
		case <-ctx.Done():
			return
		}
	}
}

// baseline takes the first labels. A provider that fails here leaves its
// labels unknown; its first successful poll compares values instead.
func (wt *watcher) baseline(ctx context.Context) {
	labels, errs := wt.versions(ctx)
	for gi, g := range wt.groups {
		if errs[gi] != nil {
			continue
		}
		for _, i := range g.idx {
			wt.labels[i] = labels[i]
		}
	}
}

// nextDelay is the time until the next poll: the interval with jitter, or
// the outage backoff, or sooner when a lease is due for its check.
func (wt *watcher) nextDelay(now time.Time) time.Duration {
	iv := wt.w.interval()
	var d time.Duration
	if wt.failures > 0 {
		ceiling := max(iv, min(10*iv, maxBackoff))
		d = iv
		for i := 1; i < wt.failures && d < ceiling; i++ {
			d *= 2
		}
		d = min(d, ceiling)
		d = time.Duration(float64(d) * (0.5 + 0.5*wt.w.random()))
	} else {
		d = time.Duration(float64(iv) * (1 - jitter + 2*jitter*wt.w.random()))
	}
	for _, at := range wt.leaseCheck {
		if !at.IsZero() && at.Sub(now) < d {
			d = max(at.Sub(now), minDelay)
		}
	}
	return d
}

// versions asks every Versioner for its labels, one call per provider, all
// providers at once. The labels of other providers are left empty.
func (wt *watcher) versions(ctx context.Context) ([]string, []error) {
	labels := make([]string, len(wt.w.Sources))
	errs := make([]error, len(wt.groups))
	var wg sync.WaitGroup
	for gi, g := range wt.groups {
		v, ok := g.prov.(providers.Versioner)
		if !ok {
			continue
		}
		wg.Go(func() {
			got, err := v.Versions(ctx, g.sources(wt.w.Sources, g.idx))
			if err == nil && len(got) != len(g.idx) {
				err = fmt.Errorf("%s returned %d versions for %d sources", wt.name(g.name), len(got), len(g.idx))
			}
			if err != nil {
				errs[gi] = err
				return
			}
			for j, i := range g.idx {
				labels[i] = got[j]
			}
		})
	}
	wg.Wait()
	return labels, errs
}

// fetch reads the sources at idx of each group (all of them when idx is
// nil), one call per provider, all providers at once.
func (wt *watcher) fetch(ctx context.Context, idx [][]int) ([]providers.Result, []error) {
	results := make([]providers.Result, len(wt.w.Sources))
	errs := make([]error, len(wt.groups))
	var wg sync.WaitGroup
	for gi, g := range wt.groups {
		which := g.idx
		if idx != nil {
			which = idx[gi]
		}
		if len(which) == 0 {
			continue
		}
		wg.Go(func() {
			got, err := g.prov.Fetch(ctx, g.sources(wt.w.Sources, which))
			if err == nil && len(got) != len(which) {
				err = fmt.Errorf("%s returned %d results for %d sources", wt.name(g.name), len(got), len(which))
			}
			if err != nil {
				errs[gi] = err
				return
			}
			for j, i := range which {
				results[i] = got[j]
			}
		})
	}
	wg.Wait()
	return results, errs
}

// report logs the providers whose state changed, failing or recovered,
// once per change, and reports whether any failed.
func (wt *watcher) report(errs []error) bool {
	failed := false
	for gi, g := range wt.groups {
		if errs[gi] != nil {
			failed = true
		}
		wt.state(g.name, errs[gi], func(err error) string {
			return fmt.Sprintf("watch: %s unreachable: %v; keeping current secrets", wt.name(g.name), err)
		}, fmt.Sprintf("watch: %s reachable again", wt.name(g.name)))
	}
	return failed
}

func (wt *watcher) state(key string, err error, failing func(error) string, recovered string) {
	switch {
	case err != nil && !wt.failing[key]:
		wt.failing[key] = true
		wt.log.Warn(failing(err), slog.String("event", "outage"), slog.String("provider", key), slog.String("error", err.Error()))
	case err == nil && wt.failing[key]:
		delete(wt.failing, key)
		wt.log.Info(recovered, slog.String("event", "recovered"), slog.String("provider", key))
	}
}

// poll asks whether anything changed and, when it did, re-reads everything
// and returns the rotation, if the child's environment changed.
func (wt *watcher) poll(ctx context.Context) (rotation, bool) {
	now := time.Now()
	labels, verrs := wt.versions(ctx)

	// Sources whose label cannot tell, and leases due for a check, are
	// fetched and compared.
	compare := make([][]int, len(wt.groups))
	for gi, g := range wt.groups {
		if verrs[gi] != nil {
			continue
		}
		_, versioned := g.prov.(providers.Versioner)
		for _, i := range g.idx {
			leaseDue := !wt.leaseCheck[i].IsZero() && !now.Before(wt.leaseCheck[i])
			if !wt.verified || !versioned || labels[i] == "" || wt.labels[i] == "" || leaseDue {
				compare[gi] = append(compare[gi], i)
			}
		}
	}
	fetched, ferrs := wt.fetch(ctx, compare)
	errs := make([]error, len(wt.groups))
	for gi := range wt.groups {
		errs[gi] = verrs[gi]
		if errs[gi] == nil {
			errs[gi] = ferrs[gi]
		}
	}
	if wt.report(errs) {
		wt.failures++
		return rotation{}, false
	}
	wt.verified = true

	changed := false
	for gi, g := range wt.groups {
		compared := map[int]bool{}
		for _, i := range compare[gi] {
			compared[i] = true
			if !sameResult(wt.current.Results[i], fetched[i]) {
				changed = true
				continue
			}
			if fetched[i].Expires != wt.current.Results[i].Expires {
				// Renewed: the same values, a later end.
				wt.current.Results[i].Expires = fetched[i].Expires
			}
			wt.setLeaseCheck(i, now)
			wt.labels[i] = labels[i]
		}
		for _, i := range g.idx {
			if !compared[i] && labels[i] != wt.labels[i] {
				changed = true
			}
		}
	}
	if !changed {
		wt.failures = 0
		wt.state(sourceProblem, nil, nil, "watch: secrets readable again")
		return rotation{}, false
	}
	labels = wt.settle(ctx, labels)
	return wt.refresh(ctx, labels)
}

// settle waits for a burst of changes to end: until two answers of the
// Versioners, a quiet period apart, agree.
func (wt *watcher) settle(ctx context.Context, labels []string) []string {
	q := wt.w.quiet()
	for range maxSettle {
		t := time.NewTimer(q)
		select {
		case <-ctx.Done():
			t.Stop()
			return labels
		case <-t.C:
		}
		again, errs := wt.versions(ctx)
		for _, err := range errs {
			if err != nil {
				// The read that follows meets the outage and reports it.
				return labels
			}
		}
		if equalStrings(again, labels) {
			return labels
		}
		labels = again
	}
	return labels
}

// refresh re-reads every source, all or nothing, and makes the result
// current. labels are the versions asked just before.
func (wt *watcher) refresh(ctx context.Context, labels []string) (rotation, bool) {
	results, errs := wt.fetch(ctx, nil)
	if wt.report(errs) {
		wt.failures++
		return rotation{}, false
	}
	secrets, err := Assemble(wt.w.Sources, results)
	wt.state(sourceProblem, err, func(err error) string {
		return fmt.Sprintf("watch: cannot read the secrets: %v; keeping current secrets", err)
	}, "watch: secrets readable again")
	if err != nil {
		wt.failures++
		return rotation{}, false
	}
	wt.failures = 0

	var changes []Change
	for i, src := range wt.w.Sources {
		before, after := wt.current.Results[i], results[i]
		if !sameResult(before, after) || before.Version != after.Version {
			changes = append(changes, Change{Provider: wt.name(src.Provider), Source: src.Ref.String(), From: before.Version, To: after.Version})
		}
	}
	env := wt.w.Environ(secrets)
	same := equalEnv(env, wt.env)
	wt.current, wt.env, wt.labels = secrets, env, labels
	now := time.Now()
	for i := range wt.w.Sources {
		wt.setLeaseCheck(i, now)
	}
	if same {
		wt.log.Debug("watch: versions changed, the environment did not", slog.String("event", "unchanged"))
		return rotation{}, false
	}
	return rotation{secrets: secrets, env: env, changes: changes}, true
}

// sameResult compares what two reads of a source gave, values in constant
// time.
func sameResult(a, b providers.Result) bool {
	if (a.Err == nil) != (b.Err == nil) || len(a.Fields) != len(b.Fields) {
		return false
	}
	for name, f := range a.Fields {
		g, ok := b.Fields[name]
		if !ok || f.Nested != g.Nested || !f.Value.Equal(g.Value) {
			return false
		}
	}
	return true
}

func equalEnv(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	eq := 1
	for i := range a {
		eq &= subtle.ConstantTimeCompare([]byte(a[i]), []byte(b[i]))
	}
	return eq == 1
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
