package inject

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/secretrun/secretrun/providers/providertest"
)

// leased is a job reading DB, leased for ttl and renewable up to maxTTL,
// without watch.
func leased(t *testing.T, ttl, maxTTL time.Duration) (*harness, *providertest.Fake) {
	f := providertest.NewFake()
	set(f, "DB", "user")
	f.Lease("DB", ttl, maxTTL)
	h := setup(t, one(f), "DB")
	h.job.Watch = nil
	return h, f
}

// Leases are kept alive for as long as the child runs, watch or not.
func TestLeasesAreRenewedWithoutWatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := leased(t, 6*time.Second, time.Hour)
		h.run()
		after(20*time.Second + time.Millisecond)
		// Renewed at two thirds of each TTL.
		want := ms(4000, 8000, 12000, 16000, 20000)
		if got := since(h.started, f.Renews()); !equalDurations(got, want) {
			t.Errorf("renewed at %v, want %v", got, want)
		}
		if end := f.LeaseExpires("DB"); !end.After(time.Now()) {
			t.Errorf("the lease ended at %v, while the child runs", end.Sub(h.started))
		}
		if n := f.Fetches(); n != 1 {
			t.Errorf("%d fetches, want only the first: renewal keeps the credentials", n)
		}
		if kids := h.children(); len(kids) != 1 || len(kids[0].got()) != 0 {
			t.Errorf("renewal touched the child")
		}
		if envValue(h.current().env, "DB") != "user#1" {
			t.Errorf("child has DB=%q", envValue(h.current().env, "DB"))
		}
		h.end(0)
		if f.Provider("f").(interface{ HoldsLeases() bool }).HoldsLeases() {
			t.Errorf("the lease was not given back when the child exited")
		}
	})
}

func TestRenewalOutageIsRetriedAndKeepsChild(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := leased(t, 60*time.Second, time.Hour)
		h.run()
		after(39 * time.Second)
		f.SetDown(errors.New("connection reset by peer"))
		after(20 * time.Second)
		// Due at 40s; retried after 1s, 2s, 4s, 8s.
		want := ms(40000, 41000, 43000, 47000, 55000)
		if got := since(h.started, f.Renews()); !equalDurations(got, want) {
			t.Errorf("renewals tried at %v, want %v", got, want)
		}
		if n := h.log.count(`renew: fake "f": fake "f": backend unavailable: connection reset by peer; the current credentials stay in use, retrying`); n != 1 {
			t.Errorf("outage logged %d times, want once; log:\n%s", n, h.log)
		}
		f.SetDown(nil)
		after(16 * time.Second) // the next try, at 71s, renews
		if n := h.log.count(`renew: fake "f" renewed again`); n != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		if end := f.LeaseExpires("DB").Sub(h.started); end != 131*time.Second {
			t.Errorf("lease ends at %v, want a TTL after the renewal at 71s", end)
		}
		if kids := h.children(); len(kids) != 1 || len(kids[0].got()) != 0 {
			t.Errorf("the renewal outage touched the child")
		}
		h.end(0)
	})
}

// Without watch, credentials at their maximum TTL cannot be replaced in the
// child: secretrun says so, once, ahead of their end.
func TestExpiringLeaseWithoutWatchWarns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := leased(t, 6*time.Second, 15*time.Second)
		h.run()
		after(30 * time.Second)
		// 4s: to 10s; 8s: to 14s; 12s: another TTL would pass the max.
		if got, want := since(h.started, f.Renews()), ms(4000, 8000, 12000); !equalDurations(got, want) {
			t.Errorf("renewed at %v, want %v", got, want)
		}
		if n := h.log.count(`renew: fake "f" DB cannot be renewed past `); n != 1 {
			t.Errorf("the expiry was reported %d times, want once; log:\n%s", n, h.log)
		}
		if n := h.log.count("run with --watch to have new ones given to it"); n != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		if kids := h.children(); len(kids) != 1 || len(kids[0].got()) != 0 {
			t.Errorf("the child was touched without watch")
		}
		h.end(0)
	})
}

// With watch, credentials at their maximum TTL are replaced right away, as
// a rotation, however long the watch interval.
func TestExpiringLeaseWithWatchRotates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, f := leased(t, 6*time.Second, 15*time.Second)
		h.job.Watch = &Watch{Interval: 5 * time.Minute, OnChange: ActionRestart}
		h.run()
		after(12*time.Second - time.Millisecond)
		if len(h.children()) != 1 {
			t.Fatalf("restarted too early")
		}
		after(time.Millisecond)
		kids := h.children()
		if len(kids) != 2 {
			t.Fatalf("%d children, want a restart with new credentials at 12s; log:\n%s", len(kids), h.log)
		}
		if v := envValue(kids[1].env, "DB"); v != "user#2" {
			t.Errorf("new child has DB=%q, want the second credentials", v)
		}
		if n := h.log.count(`renew: fake "f" DB cannot be renewed past `); n != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		if n := h.log.count(`rotation: fake "f" DB`); n != 1 {
			t.Errorf("log:\n%s", h.log)
		}
		// The new credentials are renewed in turn: 4s after they were read.
		after(5 * time.Second)
		if got, want := since(h.started, f.Renews()), ms(4000, 8000, 12000, 16000); !equalDurations(got, want) {
			t.Errorf("renewed at %v, want %v: the new lease at 16s too", got, want)
		}
		h.end(0)
	})
}

func equalDurations(a, b []time.Duration) bool {
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
