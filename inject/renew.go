package inject

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// Lifetimes
//
// A provider that holds credentials with a lifetime (providers.Holder: a
// Vault lease, a token it logged in for) has a renewer for as long as the
// child runs, with or without watch:
//
//   - The renewer calls Renew when the provider says (Renewal.Next), and
//     again whenever the provider's sources were re-read, since that may
//     have brought new leases.
//   - A failed renewal is an outage: logged once, retried after 1s, 2s, 4s
//     and so on up to 30s, and never a reason to touch the child. A renewal
//     that gets no answer fails after renewTimeout.
//   - A credential that cannot be renewed far enough (a max TTL) is
//     replaced: with watch on, the provider's poller re-reads at once,
//     which is a rotation; with watch off, the child cannot be given new
//     credentials, so secretrun warns once, ahead of the expiry, saying
//     when they end.
//   - On exit the engine calls Close, which gives everything back.

const (
	// renewTimeout bounds one Renew call. A renewal is a few small requests
	// (the token, the due leases a few at a time, now and then a login)
	// that a healthy backend answers in milliseconds, with room left for
	// the clients' own retries; and what was renewed before the timeout
	// stays renewed (Vault applies each lease's renewal as it comes), so
	// the next try has less to do. Against a black-holed backend a longer
	// bound only delays the retry on a fresh connection after the backend
	// answers again: by 30s, a short-lived token or lease may have run out
	// meanwhile. The watch's poll timeout (max(interval, 5s), at most 30s)
	// cannot serve: renewal runs without watch too, and the interval says
	// nothing about a lease's TTL.
	renewTimeout    = 10 * time.Second
	maxRenewBackoff = 30 * time.Second
)

// renewer keeps one provider's credentials alive.
type renewer struct {
	provider string
	name     string
	holder   providers.Holder
	log      *slog.Logger
	// wake makes the renewer ask the provider again now.
	wake chan struct{}
	// replace, when set, re-reads the provider's sources: watch is on.
	replace func(provider string)
	// reported are the expiring credentials already dealt with, by ref
	// and end.
	reported map[providers.Expiring]bool
	failing  bool
}

func newRenewer(provider, name string, h providers.Holder, log *slog.Logger, replace func(string)) *renewer {
	return &renewer{provider: provider, name: name, holder: h, log: log, wake: make(chan struct{}, 1), replace: replace, reported: map[providers.Expiring]bool{}}
}

// poke makes the renewer look again, without waiting.
func (r *renewer) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *renewer) run(ctx context.Context) {
	failures := 0
	for {
		rctx, cancel := context.WithTimeout(ctx, renewTimeout)
		ren, err := r.holder.Renew(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		switch {
		case err != nil:
			failures++
			wait = min(time.Second<<min(failures-1, 5), maxRenewBackoff)
			if !r.failing {
				r.failing = true
				r.log.Warn(fmt.Sprintf("renew: %s: %v; the current credentials stay in use, retrying", r.name, err),
					slog.String("event", "renew_failed"), slog.String("provider", r.provider), slog.String("error", err.Error()))
			}
		default:
			failures = 0
			if r.failing {
				r.failing = false
				r.log.Info(fmt.Sprintf("renew: %s renewed again", r.name), slog.String("event", "renew_recovered"), slog.String("provider", r.provider))
			}
			r.expiring(ren.Expiring)
			wait = -1
			if !ren.Next.IsZero() {
				wait = max(time.Until(ren.Next), minDelay)
			}
		}
		var (
			t     *time.Timer
			timer <-chan time.Time
		)
		if wait >= 0 {
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-ctx.Done():
		case <-timer:
		case <-r.wake:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// expiring deals with credentials that cannot be renewed any further, once
// each.
func (r *renewer) expiring(list []providers.Expiring) {
	for _, e := range list {
		if r.reported[e] {
			continue
		}
		r.reported[e] = true
		at := e.Expires.Format(time.RFC3339)
		if r.replace != nil {
			r.log.Info(fmt.Sprintf("renew: %s %s cannot be renewed past %s; reading new credentials", r.name, e.Ref, at),
				slog.String("event", "lease_replace"), slog.String("provider", r.provider), slog.String("source", e.Ref), slog.String("expires", at))
			r.replace(r.provider)
			continue
		}
		r.log.Warn(fmt.Sprintf("renew: %s %s cannot be renewed past %s (its maximum TTL); the command keeps these credentials until they end then; run with --watch to have new ones given to it (on_change applies)", r.name, e.Ref, at),
			slog.String("event", "lease_expiring"), slog.String("provider", r.provider), slog.String("source", e.Ref), slog.String("expires", at))
	}
}
