package inject

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
)

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
				f := providertest.NewFake()
				set(f, "A", "one")
				set(f, "B", "two")
				h := setup(t, one(f), "A", "B")
				h.job.rand = func() float64 { return tc.rand }
				h.run()
				after(5*time.Second + time.Millisecond)
				versions, fetches := f.Calls()
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
				for i, g := range gaps(versions, h.started) {
					if g != tc.gap {
						t.Errorf("poll %d came %v after the previous, want %v", i+1, g, tc.gap)
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
		f := providertest.NewFake()
		set(f, "A", "one")
		set(f, "B", "two")
		h := setup(t, one(f), "A", "B")
		h.run()
		after(300 * time.Millisecond)
		set(f, "A", "uno")
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
		if n := h.log.count(`rotation: fake "f" A v1→v3; restarting pid 100`); n != 1 {
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
		f := providertest.NewFake()
		for _, p := range []string{"A", "B", "C"} {
			set(f, p, "1")
		}
		h := setup(t, one(f), "A", "B", "C")
		h.run()
		after(900 * time.Millisecond)
		set(f, "A", "2") // seen by the poll at 1s
		after(200 * time.Millisecond)
		set(f, "B", "2") // seen by the settling probe at 1.25s
		after(200 * time.Millisecond)
		set(f, "C", "2") // seen by the one at 1.5s
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
		if n := f.Fetches(); n != 3 {
			t.Errorf("%d fetches, want the initial one, the first poll's check and one re-read", n)
		}
		h.end(0)
	})
}

func TestWatchComparesValuesWithoutVersioner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := providertest.NewFake()
		set(f, "A", "one")
		set(f, "B", "two")
		h := setup(t, map[string]providers.Provider{"f": f.Unversioned("f")}, "A", "B")
		h.run()
		after(3*time.Second + time.Millisecond)
		// The initial fetch, then one per poll for both sources.
		if n := f.Fetches(); n != 4 {
			t.Errorf("%d fetches in 3s, want 4", n)
		}
		f.Touch("A") // a new version, the same value: nothing to do
		after(time.Second)
		if len(h.children()) != 1 {
			t.Errorf("restarted for an unchanged value")
		}
		set(f, "B", "dos")
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
		f := providertest.NewFake()
		set(f, "A", "one")
		h := setup(t, one(f), "A")
		h.run()
		after(1500 * time.Millisecond) // past the first poll, which compares values
		f.Touch("A")
		after(3 * time.Second)
		if len(h.children()) != 1 {
			t.Errorf("restarted although the environment is the same")
		}
		if n := f.Fetches(); n != 3 {
			t.Errorf("%d fetches, want the initial one, the first poll's check and one re-read", n)
		}
		h.end(0)
	})
}

func TestWatchOutageKeepsChildAndSpacesPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := providertest.NewFake()
		set(f, "A", "one")
		h := setup(t, one(f), "A")
		h.run()
		after(1500 * time.Millisecond)
		f.SetDown(errors.New("connection refused"))
		downAt := time.Now()
		after(30 * time.Second)
		versions, _ := f.Calls()
		// rand is 0.5, no jitter: the failing poll at 2s, then every one
		// and a half intervals.
		want := []time.Duration{time.Second}
		for range 19 {
			want = append(want, 1500*time.Millisecond)
		}
		if got := gaps(versions, downAt); !slices.Equal(got, want) {
			t.Errorf("polls during the outage came at intervals %v, want %v", got, want)
		}
		if n := h.log.count(`watch: fake "f" unreachable: fake "f": backend unavailable: connection refused; keeping current secrets`); n != 1 {
			t.Errorf("outage logged %d times, want once; log:\n%s", n, h.log)
		}
		if len(h.children()) != 1 || len(h.children()[0].got()) != 0 {
			t.Errorf("the outage touched the child")
		}

		set(f, "A", "uno") // rotated while we could not see it
		f.SetDown(nil)
		upAt := time.Now()
		after(10 * time.Second)
		if n := h.log.count(`watch: fake "f" reachable again`); n != 1 {
			t.Errorf("recovery logged %d times; log:\n%s", n, h.log)
		}
		kids := h.children()
		if len(kids) != 2 || envValue(kids[1].env, "A") != "uno" {
			t.Fatalf("the rotation during the outage was not applied; log:\n%s", h.log)
		}
		if late := kids[1].startedAt.Sub(upAt); late > 2*time.Second {
			t.Errorf("the rotation reached the child %v after the backend came back, want within two intervals", late)
		}
		// Back to the plain interval.
		versions, _ = f.Calls()
		if gap := versions[len(versions)-1].Sub(versions[len(versions)-2]); gap != time.Second {
			t.Errorf("after recovery polls are %v apart, want 1s", gap)
		}
		h.end(0)
	})
}

// A backend that accepts connections and never answers costs its own
// poller a timeout, and nothing else: the other provider's rotation is as
// quick as ever.
func TestWatchHungBackendDoesNotDelayOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		healthy, hung := providertest.NewFake(), providertest.NewFake()
		set(healthy, "A", "one")
		set(hung, "B", "two")
		provs := map[string]providers.Provider{"f": healthy.Provider("f"), "g": hung.Provider("g")}
		h := setup(t, provs, "A", "g:B")
		h.run()
		after(500 * time.Millisecond)
		hung.SetHang(true)
		set(healthy, "A", "uno")
		after(750*time.Millisecond + time.Millisecond)
		kids := h.children()
		if len(kids) != 2 || envValue(kids[1].env, "A") != "uno" || envValue(kids[1].env, "B") != "two" {
			t.Fatalf("the healthy provider's rotation was held up by the hung one; log:\n%s", h.log)
		}
		after(20 * time.Second)
		versions, _ := healthy.Calls()
		for i, g := range gaps(versions, h.started) {
			if g != time.Second && g != 250*time.Millisecond { // a poll, or the settling probe
				t.Errorf("healthy poll %d came %v after the previous, want the interval", i+1, g)
			}
		}
		if n := h.log.count(`watch: fake "g" unreachable`); n != 1 {
			t.Errorf("the hang logged %d times, want once; log:\n%s", n, h.log)
		}
		if n := h.log.count(`watch: fake "f" unreachable`); n != 0 {
			t.Errorf("the healthy provider was reported unreachable; log:\n%s", h.log)
		}

		set(hung, "B", "dos")
		hung.SetHang(false)
		upAt := time.Now()
		after(10 * time.Second)
		kids = h.children()
		if len(kids) != 3 || envValue(kids[2].env, "A") != "uno" || envValue(kids[2].env, "B") != "dos" {
			t.Fatalf("after the hang, want a restart with both new values; log:\n%s", h.log)
		}
		// The poll in flight times out (2s during an outage), the next
		// comes one and a half intervals later, then the settling.
		if late := kids[2].startedAt.Sub(upAt); late > 2*time.Second+2*time.Second {
			t.Errorf("the rotation reached the child %v after the backend answered again", late)
		}
		h.end(0)
	})
}

// A re-read of one provider is merged with the last good values of the
// others, so one failing backend neither blocks nor loses anything.
func TestWatchMergesWithLastGoodValuesOfAFailingProvider(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		good, bad := providertest.NewFake(), providertest.NewFake()
		set(good, "A", "one")
		set(bad, "B", "two")
		provs := map[string]providers.Provider{"f": good.Provider("f"), "g": bad.Provider("g")}
		h := setup(t, provs, "A", "g:B")
		h.run()
		after(1500 * time.Millisecond)
		bad.SetDown(errors.New("503 Service Unavailable"))
		set(good, "A", "uno")
		after(2 * time.Second)
		kids := h.children()
		if len(kids) != 2 {
			t.Fatalf("%d children, want a restart for the healthy provider; log:\n%s", len(kids), h.log)
		}
		if a, b := envValue(kids[1].env, "A"), envValue(kids[1].env, "B"); a != "uno" || b != "two" {
			t.Errorf("new child has A=%q B=%q, want the new A and the last good B", a, b)
		}
		if n := bad.Fetches(); n != 2 {
			t.Errorf("the failing provider was read %d times, want only at the start and by its first poll", n)
		}
		set(bad, "B", "dos")
		bad.SetDown(nil)
		after(3 * time.Second)
		kids = h.children()
		if len(kids) != 3 || envValue(kids[2].env, "A") != "uno" || envValue(kids[2].env, "B") != "dos" {
			t.Fatalf("want a restart with both new values; log:\n%s", h.log)
		}
		h.end(0)
	})
}

func TestWatchUnreadableSecretKeepsChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := providertest.NewFake()
		set(f, "A", "one")
		h := setup(t, map[string]providers.Provider{"f": f.Unversioned("f")}, "A")
		h.run()
		f.Delete("A") // the secret is gone: the re-read cannot be used
		after(5 * time.Second)
		if len(h.children()) != 1 || len(h.children()[0].got()) != 0 {
			t.Errorf("a failed re-read touched the child")
		}
		msg := `watch: secretrun.yaml:1:1: fake "f": read A: not found; keeping current secrets until it is readable again`
		if n := h.log.count(msg); n != 1 {
			t.Errorf("logged %d times; log:\n%s", n, h.log)
		}
		set(f, "A", "uno")
		after(2 * time.Second)
		kids := h.children()
		if len(kids) != 2 || envValue(kids[1].env, "A") != "uno" {
			t.Fatalf("not restarted once the secret was back; log:\n%s", h.log)
		}
		if n := h.log.count(`watch: fake "f": secrets readable again`); n != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		h.end(0)
	})
}

func TestWatchBaselineFailureComparesValues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := providertest.NewFake()
		set(f, "A", "one")
		h := setup(t, one(f), "A")
		initial := f.Provider("f")
		// The first fetch works; the baseline right after it fails.
		h.job.Providers["f"] = &failOnce{Provider: initial, Versioner: initial.(providers.Versioner)}
		h.run()
		after(1500 * time.Millisecond)
		if len(h.children()) != 1 {
			t.Fatalf("an unknown baseline caused a restart")
		}
		if n := f.Fetches(); n != 2 {
			t.Fatalf("%d fetches, want the values compared once", n)
		}
		set(f, "A", "uno")
		after(2 * time.Second)
		if len(h.children()) != 2 {
			t.Fatalf("not restarted; log:\n%s", h.log)
		}
		h.end(0)
	})
}

// failOnce fails its first Versions call.
type failOnce struct {
	providers.Provider
	providers.Versioner
	failed bool
}

func (p *failOnce) Versions(ctx context.Context, sources []*providers.Source) ([]string, error) {
	if !p.failed {
		p.failed = true
		return nil, fmt.Errorf("fake: %w", providers.ErrUnavailable)
	}
	return p.Versioner.Versions(ctx, sources)
}

// A secret written after the first fetch but before the watch has read its
// first labels must still restart the child: the first poll compares values.
func TestWatchSeesAWriteBeforeItsFirstLabels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := providertest.NewFake()
		set(f, "A", "one")
		h := setup(t, one(f), "A")
		h.job.Providers["f"] = &writeAfterFetch{Provider: f.Provider("f"), write: func() { set(f, "A", "uno") }}
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

// writeAfterFetch writes to the backend right after the first Fetch.
type writeAfterFetch struct {
	providers.Provider
	write func()
	done  bool
}

func (p *writeAfterFetch) Fetch(ctx context.Context, sources []*providers.Source) ([]providers.Result, error) {
	res, err := p.Provider.Fetch(ctx, sources)
	if !p.done {
		p.done = true
		p.write()
	}
	return res, err
}

func (p *writeAfterFetch) Versions(ctx context.Context, sources []*providers.Source) ([]string, error) {
	return p.Provider.(providers.Versioner).Versions(ctx, sources)
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
