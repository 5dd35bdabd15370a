package infisical

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/secretrun/secretrun/providers"
)

// Login asks for a machine identity's universal auth client id and secret,
// logs in with them to check them, and keeps them in the keyring under the
// site URL, so that every project on that site can use them.
func (p *provider) Login(ctx context.Context, pr providers.Prompter) error {
	if p.env.Keyring == nil {
		return fmt.Errorf("infisical %q: no keyring to store credentials in", p.name)
	}
	id, err := pr.Ask(fmt.Sprintf("Infisical machine identity client ID (%s)", p.siteURL))
	if err != nil {
		return fmt.Errorf("infisical %q: read the client ID: %w", p.name, err)
	}
	id = strings.TrimSpace(id)
	if id == "" {
		return fmt.Errorf("infisical %q: the client ID is empty", p.name)
	}
	secret, err := pr.AskSecret("Client secret")
	if err != nil {
		return fmt.Errorf("infisical %q: read the client secret: %w", p.name, err)
	}
	secret = providers.NewSecret(strings.TrimSpace(secret.Reveal()))
	if secret.Len() == 0 {
		return fmt.Errorf("infisical %q: the client secret is empty", p.name)
	}

	api, err := p.client()
	if err != nil {
		return err
	}
	s := newSession(api, credentials{
		method: authUniversal, clientID: id, clientSecret: secret, origin: "the values entered",
	})
	defer s.close()
	if err := p.login(ctx, s); err != nil {
		return err
	}

	item, err := json.Marshal(storedCredentials{ClientID: id, ClientSecret: secret.Reveal()})
	if err != nil {
		return err
	}
	if err := p.env.Keyring.Set(KeyringService, p.siteURL, providers.NewSecret(string(item))); err != nil {
		return fmt.Errorf("infisical %q: store credentials in the keyring: %w", p.name, err)
	}
	p.dropSession()
	return nil
}

// Logout removes the credentials Login stored for the site.
func (p *provider) Logout(ctx context.Context) error {
	if p.env.Keyring == nil {
		return fmt.Errorf("infisical %q: no keyring to remove credentials from", p.name)
	}
	p.dropSession()
	forgot := p.forgetCached()
	err := p.env.Keyring.Delete(KeyringService, p.siteURL)
	if errors.Is(err, providers.ErrNotFound) && forgot {
		return nil
	}
	if errors.Is(err, providers.ErrNotFound) {
		return fmt.Errorf("infisical %q: no credentials stored for %s: %w", p.name, p.siteURL, providers.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("infisical %q: remove credentials from the keyring: %w", p.name, err)
	}
	return nil
}

// dropSession forgets the session, so the next request logs in with what is
// stored now.
func (p *provider) dropSession() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.s != nil {
		p.s.close()
		p.s = nil
	}
}
