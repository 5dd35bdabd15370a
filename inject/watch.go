package inject

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// Rotation
//
// With watch on, every provider instance has a poller of its own, so that
// a hung, failing or slow backend never delays another one's rotation:
//
//   - Every Interval, give or take a tenth at random so that a fleet started
//     together drifts apart, a poller asks its provider once, with all of
//     its sources, whether anything changed: providers.Versioner where the
//     provider implements it, a Fetch and a comparison of values for the
//     others and for the sources a Versioner cannot tell about (an empty
//     label). The first labels are taken right after the initial fetch, and
//     the first poll compares values, so a write in between is not missed.
//   - Each poll has a timeout of its own, max(interval, 5s) and at most 30s;
//     retries inside the provider's SDK count against it.
//   - A change is left to settle: the labels are asked again after a short
//     quiet period (a quarter of the interval, at most a second) until two
//     answers agree, so that several secrets rotated together cost one
//     restart. Then that provider's sources are re-read, all or nothing for
//     that provider, and the child's environment is rebuilt from them and
//     the last good values of every other provider; when it differs, the
//     supervisor applies on_change.
//   - A failing backend never touches the child: the last good values stay,
//     the outage is logged once when it starts and once when it ends. While
//     it lasts, the provider is polled every one and a half intervals, with
//     the same jitter, and the polls that follow a failure wait at most
//     max(interval, 2s) for an answer. That spaces the polls, and once the
//     backend answers again a rotation pending on it reaches the child
//     within a short timeout and one and a half intervals, plus the
//     restart: a poll that waited its full timeout on a black-holed
//     connection would miss that bound. A backend that comes back but
//     answers slower than that is seen only once it answers in time. A source that cannot be read (deleted, a field gone) keeps
//     its last good values too, logged once; it rotates when it is back.
//   - Leases are not the pollers' business: a renewer per provider keeps
//     them alive (see renew.go), and asks the provider's poller to re-read
//     at once, without settling, when one cannot be renewed any further.

// Action is what happens to the child when its secrets rotate: the
// `on_change` setting.
type Action string

// The values of `on_change`.
const (
	// ActionRestart stops the child gracefully and starts it again with
	// the new environment.
	ActionRestart Action = "restart"
	// ActionSignal sends Policy.Signal to the child. A running process's
	// environment cannot be changed, so this is for programs that re-read
	// their secrets another way when signalled; the rotation is logged.
	ActionSignal Action = "signal"
	// ActionRolling starts a new child with the new environment beside
	// the old one and stops the old one once the new one is ready.
	ActionRolling Action = "rolling"
	// ActionExit stops the child gracefully and makes secretrun exit with
	// ExitRotated, for an orchestrator to restart it.
	ActionExit Action = "exit"
	// ActionNone only logs the rotation.
	ActionNone Action = "none"
)

const (
	defaultInterval = 30 * time.Second
	// jitter is the fraction of the interval by which polls are moved at
	// random.
	jitter = 0.1
	// outageFactor stretches the interval while a provider fails.
	outageFactor = 1.5
	// maxSettle bounds the quiet periods a burst of changes may take, in
	// multiples of the quiet period.
	maxSettle = 4
	// minDelay keeps a deadline that is due from spinning a loop.
	minDelay = 10 * time.Millisecond
	// minPollTimeout and maxPollTimeout bound a poll's timeout, which is
	// the interval otherwise.
	minPollTimeout = 5 * time.Second
	maxPollTimeout = 30 * time.Second
	// minOutageTimeout is the least a poll during an outage waits.
	minOutageTimeout = 2 * time.Second
)

func intervalOr(d time.Duration) time.Duration {
	if d <= 0 {
		return defaultInterval
	}
	return d
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

// Rotation is a new environment for the child and why.
type Rotation struct {
	Secrets *Secrets
	// Env is the child's whole environment with the new secrets.
	Env     []string
	Changes []Change
}

func (r *Rotation) describe() string {
	parts := make([]string, len(r.Changes))
	for i, c := range r.Changes {
		parts[i] = c.String()
	}
	if len(parts) == 0 {
		return "the secrets changed"
	}
	return strings.Join(parts, ", ")
}

func (r *Rotation) attrs(action string, pid int) []any {
	changes := make([]any, len(r.Changes))
	for i, c := range r.Changes {
		changes[i] = map[string]string{"provider": c.Provider, "source": c.Source, "from": c.From, "to": c.To}
	}
	return []any{slog.String("event", "rotation"), slog.String("action", action), slog.Int("pid", pid), slog.Any("changes", changes)}
}

// merge folds a newer rotation into r: the newer secrets win, and the
// changes of both are kept, each source once with its first From.
func (r *Rotation) merge(newer *Rotation) *Rotation {
	if r == nil {
		return newer
	}
	out := &Rotation{Secrets: newer.Secrets, Env: newer.Env, Changes: append([]Change(nil), r.Changes...)}
	for _, c := range newer.Changes {
		found := false
		for i, o := range out.Changes {
			if o.Provider == c.Provider && o.Source == c.Source {
				out.Changes[i].To = c.To
				found = true
			}
		}
		if !found {
			out.Changes = append(out.Changes, c)
		}
	}
	return out
}

// watcher polls every provider on its own and turns their changes into
// rotations, one at a time, in the order they were read.
type watcher struct {
	sources  []*providers.Source
	names    map[string]string
	environ  func(*Secrets) []string
	interval time.Duration
	rand     func() float64
	log      *slog.Logger
	pollers  []*poller
	byName   map[string]*poller
	updates  chan update
	// onRead, when set, is told after a provider's sources were re-read,
	// so its renewer learns about new leases.
	onRead func(provider string)
	// assemble, when set, replaces Assemble over every source: it renders
	// the memory-only files too, and may refuse what the child could not
	// be started with.
	assemble func([]providers.Result) (*Secrets, error)

	// The merged state, touched only by the merging goroutine. seen is
	// what the child sees: its environment and its files' contents.
	results []providers.Result
	seen    []string
}

// update is a provider's sources re-read, all of them successfully.
type update struct {
	p       *poller
	results []providers.Result
}

// newWatcher prepares pollers for the sources of initial, the secrets the
// child was started with.
func newWatcher(sources []*providers.Source, provs map[string]providers.Provider, names map[string]string,
	initial *Secrets, environ func(*Secrets) []string, interval time.Duration, log *slog.Logger) *watcher {
	w := &watcher{
		sources: sources, names: names, environ: environ, interval: intervalOr(interval), log: log,
		byName: map[string]*poller{}, updates: make(chan update),
		results: append([]providers.Result(nil), initial.Results...),
		seen:    append(environ(initial), fileContents(initial)...),
	}
	for i, src := range sources {
		p := w.byName[src.Provider]
		if p == nil {
			p = &poller{w: w, provider: src.Provider, prov: provs[src.Provider], kick: make(chan struct{}, 1)}
			p.versioner, _ = p.prov.(providers.Versioner)
			w.byName[src.Provider] = p
			w.pollers = append(w.pollers, p)
		}
		p.idx = append(p.idx, i)
		p.sources = append(p.sources, src)
		p.results = append(p.results, initial.Results[i])
	}
	for _, p := range w.pollers {
		p.labels = make([]string, len(p.idx))
	}
	return w
}

func (w *watcher) random() float64 {
	if w.rand != nil {
		return w.rand()
	}
	return rand.Float64()
}

// name is a provider's name for messages: `vault "prod"`.
func (w *watcher) name(provider string) string {
	if n, ok := w.names[provider]; ok {
		return n
	}
	return fmt.Sprintf("%q", provider)
}

// kick makes a provider's poller re-read its sources now, as when a lease
// can no longer be renewed.
func (w *watcher) kick(provider string) {
	if p := w.byName[provider]; p != nil {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// run polls until ctx ends, sending rotations to out. It returns once every
// poller has, so that no backend call outlives it.
func (w *watcher) run(ctx context.Context, out chan<- Rotation) {
	done := make(chan struct{}, len(w.pollers))
	for _, p := range w.pollers {
		go func() {
			defer func() { done <- struct{}{} }()
			p.run(ctx)
		}()
	}
	defer func() {
		for range w.pollers {
			<-done
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-w.updates:
			r, ok := w.merge(u)
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
}

// merge puts a provider's new results beside the last good results of the
// others and returns the rotation, if the child's environment changed.
func (w *watcher) merge(u update) (Rotation, bool) {
	var changes []Change
	for j, i := range u.p.idx {
		before, after := w.results[i], u.results[j]
		if !sameResult(before, after) || before.Version != after.Version {
			changes = append(changes, Change{Provider: w.name(u.p.provider), Source: w.sources[i].Ref.String(), From: before.Version, To: after.Version})
		}
		w.results[i] = after
	}
	assemble := w.assemble
	if assemble == nil {
		assemble = func(results []providers.Result) (*Secrets, error) { return Assemble(w.sources, results) }
	}
	secrets, err := assemble(w.results)
	if err != nil {
		// Each provider's sources were checked on their own, so this is
		// a template that no longer renders or a variable too large for
		// the child; it keeps what it has.
		w.log.Warn(fmt.Sprintf("watch: cannot assemble the secrets: %v; keeping current secrets", err))
		return Rotation{}, false
	}
	env := w.environ(secrets)
	seen := append(slices.Clone(env), fileContents(secrets)...)
	if equalEnv(seen, w.seen) {
		w.log.Debug("watch: versions changed, the environment did not", slog.String("event", "unchanged"))
		return Rotation{}, false
	}
	w.seen = seen
	return Rotation{Secrets: secrets, Env: env, Changes: changes}, true
}

// poller watches one provider instance. Only its own goroutine touches its
// fields.
type poller struct {
	w         *watcher
	provider  string
	prov      providers.Provider
	versioner providers.Versioner
	// idx are the provider's sources' positions among all sources.
	idx     []int
	sources []*providers.Source
	// labels are the versions the results were read at, per source; ""
	// when unknown, which makes a poll compare values.
	labels []string
	// results are the last good results, per source.
	results []providers.Result
	kick    chan struct{}
	// verified is set once a poll has compared every source's values with
	// the ones the child started with. The first labels are read after
	// that first fetch, so a write in between changes no label: only the
	// values show it.
	verified bool
	failures int
	// failing and unreadable are the problems being reported, so each is
	// logged once.
	failing    bool
	unreadable bool
}

func (p *poller) name() string { return p.w.name(p.provider) }

func (p *poller) run(ctx context.Context) {
	p.baseline(ctx)
	for {
		t := time.NewTimer(p.nextDelay())
		forced := false
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-p.kick:
			t.Stop()
			forced = true
		}
		results, ok := p.poll(ctx, forced)
		if !ok {
			continue
		}
		select {
		// A copy: the poller goes on updating its own.
		case p.w.updates <- update{p: p, results: slices.Clone(results)}:
		case <-ctx.Done():
			return
		}
	}
}

// timeout bounds one poll: the interval, between 5s and 30s. After a
// failure polls wait less, between 2s and 30s, so a backend that
// black-holes connections is found answering again soon after it does.
func (p *poller) timeout() time.Duration {
	iv := p.w.interval
	if p.failures > 0 {
		return min(max(iv, minOutageTimeout), maxPollTimeout)
	}
	return min(max(iv, minPollTimeout), maxPollTimeout)
}

// nextDelay is the time until the next poll: the interval with jitter,
// stretched while the provider fails.
func (p *poller) nextDelay() time.Duration {
	d := float64(p.w.interval)
	if p.failures > 0 {
		d *= outageFactor
	}
	return time.Duration(d * (1 - jitter + 2*jitter*p.w.random()))
}

// baseline takes the first labels. A provider that fails here leaves its
// labels unknown; its first successful poll compares values anyway.
func (p *poller) baseline(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	if labels, err := p.versions(ctx); err == nil && labels != nil {
		p.labels = labels
	}
}

// versions asks the provider for its labels; nil when it has no Versioner.
func (p *poller) versions(ctx context.Context) ([]string, error) {
	if p.versioner == nil {
		return nil, nil
	}
	got, err := p.versioner.Versions(ctx, p.sources)
	if err == nil && len(got) != len(p.sources) {
		err = fmt.Errorf("%s returned %d versions for %d sources", p.name(), len(got), len(p.sources))
	}
	return got, err
}

// fetch reads the sources at positions which (all of them when nil).
func (p *poller) fetch(ctx context.Context, which []int) ([]providers.Result, error) {
	srcs := p.sources
	if which != nil {
		srcs = make([]*providers.Source, len(which))
		for k, j := range which {
			srcs[k] = p.sources[j]
		}
	}
	got, err := p.prov.Fetch(ctx, srcs)
	if err == nil && len(got) != len(srcs) {
		err = fmt.Errorf("%s returned %d results for %d sources", p.name(), len(got), len(srcs))
	}
	return got, err
}

// poll asks whether anything changed and, when it did, re-reads every
// source of the provider. It returns the new results when they are all
// good and differ from the last good ones; forced re-reads them at once,
// whatever the labels say.
func (p *poller) poll(ctx context.Context, forced bool) ([]providers.Result, bool) {
	var labels []string
	if !forced {
		changed, seen, err := p.check(ctx)
		if err != nil {
			p.failed(err)
			return nil, false
		}
		if !changed {
			p.recovered()
			return nil, false
		}
		labels = p.settle(ctx, seen)
	}
	rctx, cancel := context.WithTimeout(ctx, p.timeout())
	results, err := p.fetch(rctx, nil)
	if err == nil && forced {
		// Nothing to settle: the labels are those of what was just read.
		labels = p.labelsAfterRead(rctx)
	}
	cancel()
	if err != nil {
		p.failed(err)
		return nil, false
	}
	p.recovered()
	if p.w.onRead != nil {
		p.w.onRead(p.provider)
	}
	if _, err := Assemble(p.sources, results); err != nil {
		// Deleted, or a field gone: the child keeps the last good
		// values. The labels of this state are kept, so it is read
		// again only when it changes again.
		if !p.unreadable {
			p.unreadable = true
			p.w.log.Warn(fmt.Sprintf("watch: %s; keeping current secrets until it is readable again", named(p.name(), err)),
				slog.String("event", "unreadable"), slog.String("provider", p.provider), slog.String("error", err.Error()))
		}
		if labels != nil {
			p.labels = labels
		}
		return nil, false
	}
	if p.unreadable {
		p.unreadable = false
		p.w.log.Info(fmt.Sprintf("watch: %s: secrets readable again", p.name()), slog.String("event", "readable"), slog.String("provider", p.provider))
	}
	same := true
	for j := range results {
		if !sameResult(results[j], p.results[j]) || results[j].Version != p.results[j].Version {
			same = false
		}
	}
	if labels != nil {
		p.labels = labels
	}
	p.results = results
	return results, !same
}

// labelsAfterRead labels what a forced read gave. When the provider cannot
// tell, the labels are unknown, so the next poll compares values rather than
// seeing a change in labels that is none.
func (p *poller) labelsAfterRead(ctx context.Context) []string {
	if labels, err := p.versions(ctx); err == nil && labels != nil {
		return labels
	}
	return make([]string, len(p.sources))
}

// check reports whether the provider's sources changed, with the labels
// it saw. Sources whose label cannot tell are fetched and compared.
func (p *poller) check(ctx context.Context) (bool, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	labels, err := p.versions(ctx)
	if err != nil {
		return false, nil, err
	}
	var compare []int
	changed := false
	for j := range p.sources {
		switch {
		case !p.verified || labels == nil || labels[j] == "" || p.labels[j] == "":
			compare = append(compare, j)
		case labels[j] != p.labels[j]:
			changed = true
		}
	}
	if len(compare) > 0 {
		fetched, err := p.fetch(ctx, compare)
		if err != nil {
			return false, nil, err
		}
		for k, j := range compare {
			if !sameResult(p.results[j], fetched[k]) {
				changed = true
				continue
			}
			// Renewed: the same values, a later end.
			p.results[j].Expires = fetched[k].Expires
			if labels != nil {
				p.labels[j] = labels[j]
			}
		}
	}
	p.verified = true
	return changed, labels, nil
}

// settle waits for a burst of changes to end: until two answers of the
// Versioner, a quiet period apart, agree.
func (p *poller) settle(ctx context.Context, labels []string) []string {
	if p.versioner == nil {
		return labels
	}
	q := min(time.Second, p.w.interval/4)
	for range maxSettle {
		t := time.NewTimer(q)
		select {
		case <-ctx.Done():
			t.Stop()
			return labels
		case <-t.C:
		}
		vctx, cancel := context.WithTimeout(ctx, p.timeout())
		again, err := p.versions(vctx)
		cancel()
		if err != nil {
			// The read that follows meets the outage and reports it.
			return labels
		}
		if equalStrings(again, labels) {
			return labels
		}
		labels = again
	}
	return labels
}

// failed counts a failed poll and logs the outage when it starts.
func (p *poller) failed(err error) {
	p.failures++
	if p.failing {
		return
	}
	p.failing = true
	p.w.log.Warn(fmt.Sprintf("watch: %s unreachable: %v; keeping current secrets", p.name(), err),
		slog.String("event", "outage"), slog.String("provider", p.provider), slog.String("error", err.Error()))
}

// recovered logs the end of an outage.
func (p *poller) recovered() {
	p.failures = 0
	if !p.failing {
		return
	}
	p.failing = false
	p.w.log.Info(fmt.Sprintf("watch: %s reachable again", p.name()), slog.String("event", "recovered"), slog.String("provider", p.provider))
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
