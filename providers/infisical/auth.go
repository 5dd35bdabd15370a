package infisical

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	sdk "github.com/infisical/go-sdk"

	"github.com/secretrun/secretrun/providers"
)

// credentials are what a session logs in with, and where they came from,
// for messages.
type credentials struct {
	method       string
	token        providers.Secret
	clientID     string
	clientSecret providers.Secret
	identityID   string
	jwt          providers.Secret
	origin       string
}

// storedCredentials is the keyring item that `secretrun login infisical`
// writes.
type storedCredentials struct {
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

// credentials finds what to authenticate with. Nothing is read from the
// process environment directly: Env.Getenv stands for it.
func (p *provider) credentials() (credentials, error) {
	getenv := p.env.Getenv
	if p.auth.Method == authKubernetes {
		c := credentials{method: authKubernetes, identityID: p.auth.IdentityID}
		if c.identityID == "" {
			c.identityID = getenv("INFISICAL_KUBERNETES_IDENTITY_ID")
		}
		if c.identityID == "" {
			return c, fmt.Errorf("infisical %q: kubernetes auth needs `auth.identity_id` or INFISICAL_KUBERNETES_IDENTITY_ID: %w", p.name, providers.ErrAuth)
		}
		file := p.auth.ServiceAccountTokenFile
		if file == "" {
			file = getenv("INFISICAL_KUBERNETES_SERVICE_ACCOUNT_TOKEN_PATH")
		}
		if file == "" {
			file = defaultServiceAccountTokenFile
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("infisical %q: read the kubernetes service account token: %w: %w", p.name, providers.ErrAuth, err)
		}
		c.jwt = providers.NewSecret(strings.TrimSpace(string(b)))
		c.origin = "the kubernetes service account token " + file
		return c, nil
	}
	if p.auth.Method == authAuto || p.auth.Method == authToken {
		if t := getenv("INFISICAL_TOKEN"); t != "" {
			return credentials{method: authToken, token: providers.NewSecret(t), origin: "INFISICAL_TOKEN"}, nil
		}
		if p.auth.Method == authToken {
			return credentials{}, fmt.Errorf("infisical %q: `auth.method: token` needs INFISICAL_TOKEN: %w", p.name, providers.ErrAuth)
		}
	}
	id, idVar := getenv("INFISICAL_CLIENT_ID"), "INFISICAL_CLIENT_ID"
	secret, secretVar := getenv("INFISICAL_CLIENT_SECRET"), "INFISICAL_CLIENT_SECRET"
	// The names Infisical's own SDKs and CLI read work too.
	if id == "" && secret == "" {
		id, idVar = getenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_ID"), "INFISICAL_UNIVERSAL_AUTH_CLIENT_ID"
		secret, secretVar = getenv("INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"), "INFISICAL_UNIVERSAL_AUTH_CLIENT_SECRET"
	}
	switch {
	case id != "" && secret != "":
		return credentials{method: authUniversal, clientID: id, clientSecret: providers.NewSecret(secret), origin: idVar + " and " + secretVar}, nil
	case id != "":
		return credentials{}, fmt.Errorf("infisical %q: %s is set but %s is not: %w", p.name, idVar, secretVar, providers.ErrAuth)
	case secret != "":
		return credentials{}, fmt.Errorf("infisical %q: %s is set but %s is not: %w", p.name, secretVar, idVar, providers.ErrAuth)
	}
	if p.env.Keyring != nil {
		item, err := p.env.Keyring.Get(KeyringService, p.siteURL)
		switch {
		case err == nil:
			var sc storedCredentials
			if err := json.Unmarshal([]byte(item.Reveal()), &sc); err != nil || sc.ClientID == "" || sc.ClientSecret == "" {
				return credentials{}, fmt.Errorf("infisical %q: the keyring item %s/%s is not what `secretrun login %s` stores; run it again: %w", p.name, KeyringService, p.siteURL, p.name, providers.ErrAuth)
			}
			return credentials{method: authUniversal, clientID: sc.ClientID, clientSecret: providers.NewSecret(sc.ClientSecret),
				origin: "the keyring (secretrun login " + p.name + ")"}, nil
		case !errors.Is(err, providers.ErrNotFound):
			return credentials{}, fmt.Errorf("infisical %q: read credentials from the keyring: %w: %w", p.name, providers.ErrAuth, err)
		}
	}
	if p.auth.Method == authUniversal {
		return credentials{}, fmt.Errorf("infisical %q: no machine identity for %s: set INFISICAL_CLIENT_ID and INFISICAL_CLIENT_SECRET, or run `secretrun login %s`: %w", p.name, p.siteURL, p.name, providers.ErrAuth)
	}
	return credentials{}, fmt.Errorf("infisical %q: no credentials for %s: set INFISICAL_TOKEN, or INFISICAL_CLIENT_ID and INFISICAL_CLIENT_SECRET, or run `secretrun login %s`: %w", p.name, p.siteURL, p.name, providers.ErrAuth)
}

// session is one SDK client and its login. The SDK renews a machine
// identity's token in the background and before requests, so a long watch
// run stays authenticated with one login.
type session struct {
	client sdk.InfisicalClientInterface
	cancel context.CancelFunc
	creds  credentials

	// mu serializes logins; generation counts them, so that requests that
	// failed with the same expired token trigger one new login, not many.
	mu         sync.Mutex
	generation int
}

func (s *session) close() { s.cancel() }

// newClient builds an SDK client. Its own retries are off: the provider
// retries (only what is worth retrying) with backoff and a context. Its logs
// are off: the provider reports what matters through Env.
func (p *provider) newClient(refresh bool) (sdk.InfisicalClientInterface, context.CancelFunc, error) {
	cfg := sdk.Config{
		SiteUrl:          p.siteURL,
		SilentMode:       true,
		LogWriter:        io.Discard,
		AutoTokenRefresh: sdk.BoolPtr(refresh),
		RetryRequestsConfig: &sdk.RetryRequestsConfig{
			ExponentialBackoff: &sdk.ExponentialBackoffStrategy{MaxRetries: 0},
		},
	}
	if p.caCertFile != "" {
		pem, err := os.ReadFile(p.caCertFile)
		if err != nil {
			return nil, nil, fmt.Errorf("infisical %q: read ca_cert_file: %w", p.name, err)
		}
		cfg.CaCertificate = string(pem)
	}
	// The context lives as long as the session: it stops the SDK's token
	// renewal goroutine.
	ctx, cancel := context.WithCancel(context.Background())
	return sdk.NewInfisicalClient(ctx, cfg), cancel, nil
}

// session returns the provider's session, creating it and logging in on
// first use.
func (p *provider) session(ctx context.Context) (*session, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.s != nil {
		return p.s, nil
	}
	creds, err := p.credentials()
	if err != nil {
		return nil, err
	}
	client, cancel, err := p.newClient(creds.method != authToken)
	if err != nil {
		return nil, err
	}
	s := &session{client: client, cancel: cancel, creds: creds}
	if err := p.login(ctx, s); err != nil {
		cancel()
		return nil, err
	}
	p.s = s
	return s, nil
}

// login authenticates the session's client. Callers hold s.mu or own s.
func (p *provider) login(ctx context.Context, s *session) error {
	c := s.creds
	auth := s.client.Auth()
	if c.method == authToken {
		auth.SetAccessToken(c.token.Reveal())
		s.generation++
		return nil
	}
	org := p.auth.OrganizationSlug
	if org == "" {
		org = p.env.Getenv("INFISICAL_AUTH_ORGANIZATION_SLUG")
	}
	if org != "" {
		auth = auth.WithOrganizationSlug(org)
	}
	cred, err := call(ctx, p, func() (sdk.MachineIdentityCredential, error) {
		if c.method == authKubernetes {
			return auth.KubernetesRawServiceAccountTokenLogin(c.identityID, c.jwt.Reveal())
		}
		return auth.UniversalAuthLogin(c.clientID, c.clientSecret.Reveal())
	})
	if err != nil {
		what := "machine identity " + c.clientID
		if c.method == authKubernetes {
			what = "kubernetes identity " + c.identityID
		}
		return fmt.Errorf("infisical %q: log in to %s as %s (credentials from %s): %w", p.name, p.siteURL, what, c.origin, describe(err))
	}
	if cred.ExpiresIn > 0 && cred.ExpiresIn < 60 {
		p.env.Warn("infisical %q: access tokens from %s live only %ds; renewing them that often may hit rate limits", p.name, p.siteURL, cred.ExpiresIn)
	}
	s.generation++
	return nil
}

// relogin logs in again after the server refused the session's token,
// unless another request already did since generation was read. A static
// access token cannot be renewed: its refusal is final.
func (p *provider) relogin(ctx context.Context, s *session, generation int) error {
	if s.creds.method == authToken {
		return errNoRelogin
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.generation != generation {
		return nil
	}
	if s.creds.method == authKubernetes {
		// The kubelet rotates projected service account tokens: log in
		// with the one on disk now, not the one read at start.
		if c, err := p.credentials(); err == nil {
			s.creds = c
		}
	}
	return p.login(ctx, s)
}

var errNoRelogin = errors.New("a static access token cannot be renewed")

// withSession runs f with the session, logging in once more if the server
// refuses the token: it may have expired or been revoked ahead of the
// SDK's schedule.
func withSession[T any](ctx context.Context, p *provider, s *session, f func() (T, error)) (T, error) {
	s.mu.Lock()
	generation := s.generation
	s.mu.Unlock()
	v, err := f()
	if err == nil || !errors.Is(describe(err), providers.ErrAuth) {
		return v, err
	}
	if rerr := p.relogin(ctx, s, generation); rerr != nil {
		if errors.Is(rerr, errNoRelogin) {
			return v, err
		}
		var zero T
		return zero, &reloginError{err: rerr}
	}
	return f()
}

// reloginError is a failed login after a refused token; it is already
// described and names the provider.
type reloginError struct{ err error }

func (e *reloginError) Error() string { return e.err.Error() }
func (e *reloginError) Unwrap() error { return e.err }
