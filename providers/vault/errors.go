package vault

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/logincache"
)

// statusOf returns the HTTP status of a Vault error response, or 0 when the
// request got no answer.
func statusOf(err error) int {
	var re *responseError
	if errors.As(err, &re) {
		return re.status
	}
	return 0
}

// vaultSays is what Vault gave as the reason for an error, cleaned of the
// multi-line decoration Vault puts around it. Vault's own messages name
// paths and policies, never stored values; a raw body (a proxy's error page,
// say) is left out altogether.
func vaultSays(err error) string {
	var re *responseError
	if !errors.As(err, &re) {
		return ""
	}
	if re.raw {
		return fmt.Sprintf("HTTP %d", re.status)
	}
	var parts []string
	for _, e := range re.errors {
		for _, line := range strings.Split(e, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
			if line == "" || strings.HasSuffix(line, "error occurred:") || strings.HasSuffix(line, "errors occurred:") {
				continue
			}
			parts = append(parts, line)
		}
	}
	msg := strings.Join(parts, "; ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if msg == "" {
		msg = fmt.Sprintf("HTTP %d", re.status)
	}
	return msg
}

// isUnavailable reports whether err means Vault could not be asked at all:
// no answer, sealed, standby without a leader, overloaded.
func isUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch s := statusOf(err); {
	case s == 0:
		return true
	case s == 429 || s >= 500:
		return true
	}
	return false
}

// unavailable describes an unreachable or unusable server, naming its
// address and the cause.
func (p *provider) unavailable(op string, err error) error {
	cause := vaultSays(err)
	if statusOf(err) == 0 {
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err.Error()
		} else {
			cause = err.Error()
		}
	}
	return fmt.Errorf("vault %q: %s: vault at %s: %w: %s", p.name, op, p.conn.address, providers.ErrUnavailable, cause)
}

// fatal reports whether an error must fail a whole Fetch or Versions call
// rather than one source.
func fatal(err error) bool {
	return errors.Is(err, providers.ErrUnavailable) || errors.Is(err, providers.ErrAuth) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// describe wraps an error from Vault about op on path into one that wraps
// the providers sentinel matching it. A 403 is checked against the token:
// when the token itself is no longer valid it is an authentication failure,
// otherwise a denial that lists the token's policies.
func (p *provider) describe(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("vault %q: %s: %w", p.name, op, ctxErr)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("vault %q: %s: %w", p.name, op, err)
	}
	if isUnavailable(err) {
		return p.unavailable(op, err)
	}
	switch statusOf(err) {
	case 401:
		return fmt.Errorf("vault %q: %s: %w: %s", p.name, op, providers.ErrAuth, vaultSays(err))
	case 403:
		return p.denied(ctx, op)
	case 404:
		return fmt.Errorf("vault %q: %s: %w", p.name, op, providers.ErrNotFound)
	}
	return fmt.Errorf("vault %q: %s: %s", p.name, op, vaultSays(err))
}

// denied tells a rejected token from a token without the right policy,
// which Vault both answer with 403.
func (p *provider) denied(ctx context.Context, op string) error {
	if err := p.checkToken(ctx, op); err != nil {
		return err
	}
	policies, err := p.tokenPolicies(ctx)
	switch {
	case err != nil && statusOf(err) == 403:
		return p.tokenRejected(op)
	case err != nil && isUnavailable(err):
		return p.unavailable(op, err)
	case err != nil:
		return fmt.Errorf("vault %q: %s: %w", p.name, op, providers.ErrDenied)
	}
	return fmt.Errorf("vault %q: %s: %w (token policies: %s)", p.name, op, providers.ErrDenied, strings.Join(policies, ", "))
}

// checkToken asks Vault, after a 403, whether it still accepts the token at
// all: an operator may have revoked it, or it may have expired sooner than
// its TTL said. What is known about the token (its policies) cannot tell.
// A token of ours is then marked run out, so that the next request logs in
// again. It returns nil when the token is fine or Vault cannot say.
func (p *provider) checkToken(ctx context.Context, op string) error {
	c, err := p.sharedClient()
	if err != nil {
		return nil
	}
	if err := p.acquire(ctx); err != nil {
		return nil
	}
	_, err = c.lookupSelf(ctx)
	p.release()
	switch {
	case err == nil:
		return nil
	case isUnavailable(err):
		return p.unavailable(op, err)
	case statusOf(err) != 403:
		return nil
	}
	p.authMu.Lock()
	var drop *logincache.Cache
	t := p.tok
	if t != nil && t.ours {
		drop = p.rejectedLocked(t)
	}
	p.authMu.Unlock()
	if drop != nil {
		drop.Drop(providers.NewSecret(t.token))
	}
	return p.tokenRejected(op)
}

func (p *provider) tokenRejected(op string) error {
	return fmt.Errorf("vault %q: %s: %w: the token is invalid or expired (%s)", p.name, op, providers.ErrAuth, p.tokenOrigin())
}
