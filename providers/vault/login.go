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

// Login implements `secretrun login`: it obtains a token (typed in, or from
// a userpass or ldap login), checks it with a token lookup, and stores it in
// the keyring under the Vault address. Nothing is written to ~/.vault-token.
func (p *provider) Login(ctx context.Context, pr providers.Prompter) error {
	if p.env.Keyring == nil {
		return fmt.Errorf("vault %q: login: no keyring to store the token in", p.name)
	}
	m := p.auth.method()
	var token string
	switch m {
	case "token":
		s, err := pr.AskSecret("Vault token for " + p.conn.address)
		if err != nil {
			return fmt.Errorf("vault %q: login: %w", p.name, err)
		}
		token = strings.TrimSpace(s.Reveal())
		if token == "" {
			return fmt.Errorf("vault %q: login: %w: no token given", p.name, providers.ErrAuth)
		}
	case "userpass", "ldap":
		user := p.auth.Username
		if user == "" {
			u, err := pr.Ask("Vault username (" + m + ")")
			if err != nil {
				return fmt.Errorf("vault %q: login: %w", p.name, err)
			}
			user = strings.TrimSpace(u)
		}
		if user == "" {
			return fmt.Errorf("vault %q: login: %w: no username given", p.name, providers.ErrAuth)
		}
		pw, err := pr.AskSecret("Password for " + user + " at " + p.conn.address)
		if err != nil {
			return fmt.Errorf("vault %q: login: %w", p.name, err)
		}
		op := "login with " + m + " at auth/" + p.auth.mount() + " as " + user
		s, err := p.loginRequest(ctx, "auth/"+p.auth.mount()+"/login/"+url.PathEscape(user), map[string]any{"password": pw.Reveal()})
		if err != nil {
			return p.loginError(ctx, op, err)
		}
		t, err := p.tokenFromLogin(op, s)
		if err != nil {
			return err
		}
		token = t.token
	default:
		return fmt.Errorf("vault %q: login: method %s logs in by itself on every run; `secretrun login` is for methods token, userpass and ldap", p.name, m)
	}
	if err := p.verify(ctx, token); err != nil {
		return err
	}
	if err := p.env.Keyring.Set(KeyringService, p.conn.address, providers.NewSecret(token)); err != nil {
		return fmt.Errorf("vault %q: login: store the token in the keyring: %w", p.name, err)
	}
	return nil
}

// verify checks a token with a lookup of itself, which every valid token
// may do.
func (p *provider) verify(ctx context.Context, token string) error {
	c, err := p.newClient(token)
	if err != nil {
		return fmt.Errorf("vault %q: login: %w", p.name, err)
	}
	if err := p.acquire(ctx); err != nil {
		return err
	}
	_, err = c.lookupSelf(ctx)
	p.release()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil || isUnavailable(err):
		return p.describe(ctx, "login: check the token", err)
	}
	return fmt.Errorf("vault %q: login: %w: Vault at %s does not accept the token (%s)", p.name, providers.ErrAuth, p.conn.address, vaultSays(err))
}

// Logout removes the token that Login stored. It does not revoke it: the
// token may have been created elsewhere and still be in use there. With
// `cache: keyring` it removes the cached login token instead, and revokes
// it: that one was secretrun's own.
func (p *provider) Logout(ctx context.Context) error {
	if p.env.Keyring == nil {
		return fmt.Errorf("vault %q: logout: no keyring", p.name)
	}
	if p.auth.cached() {
		return p.forgetCached(ctx)
	}
	if err := p.env.Keyring.Delete(KeyringService, p.conn.address); err != nil {
		if errors.Is(err, providers.ErrNotFound) {
			return fmt.Errorf("vault %q: logout: no token stored for %s: %w", p.name, p.conn.address, providers.ErrNotFound)
		}
		return fmt.Errorf("vault %q: logout: %w", p.name, err)
	}
	return nil
}

// forgetCached removes the cached login token from the keyring and revokes
// it. One that Vault no longer accepts has nothing left to revoke.
func (p *provider) forgetCached(ctx context.Context) error {
	tok, err := logincache.Forget(p.env.Keyring, p.cacheIdentity())
	switch {
	case errors.Is(err, providers.ErrNotFound):
		return fmt.Errorf("vault %q: logout: no login token cached for %s: %w", p.name, p.conn.address, providers.ErrNotFound)
	case err != nil:
		return fmt.Errorf("vault %q: logout: %w", p.name, err)
	case tok.Len() == 0:
		return nil
	}
	c, err := p.newClient(tok.Reveal())
	if err != nil {
		return fmt.Errorf("vault %q: logout: %w", p.name, err)
	}
	if err := p.acquire(ctx); err != nil {
		return err
	}
	err = revokeSelf(ctx, c)
	p.release()
	if err != nil && statusOf(err) != 403 {
		return p.describe(ctx, "logout: revoke the cached login token", err)
	}
	return nil
}
