// Package infisical reads secrets from Infisical, cloud or self-hosted,
// through its documented REST API.
//
// A provider instance names a site and a project; each source names an
// environment and a folder path (or one secret in it). The provider logs in
// once per run with a machine identity (universal auth or Kubernetes auth) or
// uses an access token, renews the token during long watch runs, and reports
// changes cheaply through the list endpoint's ETag. It calls the API with
// net/http rather than Infisical's Go SDK, whose client package links gRPC,
// OpenTelemetry and the GCP and OCI SDKs for auth methods secretrun does not
// offer: that cost milliseconds of package initialisation on every start.
package infisical

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/logincache"
)

// TypeName is the value of `type:` for this provider.
const TypeName = "infisical"

// DefaultSiteURL is Infisical Cloud (US region).
const DefaultSiteURL = "https://app.infisical.com"

// KeyringService is the keyring service under which `secretrun login
// infisical` stores a machine identity's credentials, keyed by site URL.
const KeyringService = "secretrun-infisical"

// Type returns the provider type to register.
func Type() providers.Type {
	return providers.Type{Name: TypeName, New: New}
}

// settings is the provider block in secretrun.yaml.
type settings struct {
	SiteURL     string       `yaml:"site_url"`
	ProjectID   string       `yaml:"project_id"`
	ProjectSlug string       `yaml:"project_slug"`
	CACertFile  string       `yaml:"ca_cert_file"`
	Auth        authSettings `yaml:"auth"`
}

// authSettings chooses how to authenticate. Without a method the provider
// takes INFISICAL_TOKEN, then INFISICAL_CLIENT_ID/INFISICAL_CLIENT_SECRET,
// then what `secretrun login infisical` stored.
type authSettings struct {
	Method string `yaml:"method"`
	// IdentityID and ServiceAccountTokenFile are for Kubernetes auth.
	IdentityID              string `yaml:"identity_id"`
	ServiceAccountTokenFile string `yaml:"service_account_token_file"`
	// OrganizationSlug scopes the login to a sub-organization.
	OrganizationSlug string `yaml:"organization_slug"`
	// Cache is `keyring` to keep the login's access token for later runs;
	// see cache.go.
	Cache string `yaml:"cache"`
}

const (
	authAuto       = ""
	authToken      = "token"
	authUniversal  = "universal"
	authKubernetes = "kubernetes"
)

// defaultServiceAccountTokenFile is where Kubernetes mounts a pod's token.
const defaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// sourceSettings are the keys of a source, beside the common ones.
type sourceSettings struct {
	Environment      string   `yaml:"environment"`
	Path             string   `yaml:"path"`
	Secret           string   `yaml:"secret"`
	Recursive        bool     `yaml:"recursive"`
	IncludeImports   *bool    `yaml:"include_imports"`
	ExpandReferences *bool    `yaml:"expand_references"`
	Tags             []string `yaml:"tags"`
}

// ref is what one source reads.
type ref struct {
	query
	// secret names one secret to read instead of the whole folder.
	secret string
	// version pins that secret's version; 0 reads the current one.
	version int
	tags    []string
}

// query is one list request; sources that share one share the request.
type query struct {
	env       string
	path      string
	recursive bool
	imports   bool
	expand    bool
}

// String is how messages and origins name the source: its folder path, with
// the secret's key when the source reads one. The environment is in every
// message beside it.
func (r *ref) String() string {
	if r.secret != "" {
		return joinPath(r.path, r.secret)
	}
	return r.path
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// provider is one configured Infisical instance.
type provider struct {
	name        string
	siteURL     string
	projectID   string
	projectSlug string
	caCertFile  string
	auth        authSettings
	env         providers.Env

	// retry governs the retries of rate-limited and failed requests.
	retry retryPolicy
	// callTimeout bounds one attempt of a request, so that a server that
	// never answers costs a retry, not the whole run.
	callTimeout time.Duration
	// parallel bounds the requests in flight during one Fetch.
	parallel int

	mu sync.Mutex
	s  *session

	clientMu sync.Mutex
	api      *client

	warnShortTTL sync.Once

	etagMu sync.Mutex
	etags  map[query]string
}

// New builds a provider from its config block. It checks settings only.
func New(name string, opts providers.Options, env providers.Env) (providers.Provider, error) {
	var s settings
	if err := opts.Decode(&s); err != nil {
		return nil, err
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	site, err := normalizeSiteURL(s.SiteURL)
	if err != nil {
		return nil, err
	}
	switch {
	case s.ProjectID == "" && s.ProjectSlug == "":
		return nil, fmt.Errorf("missing `project_id:` (or `project_slug:`), the Infisical project to read")
	case s.ProjectID != "" && s.ProjectSlug != "":
		return nil, fmt.Errorf("`project_id` and `project_slug` name the same thing; set one")
	}
	switch s.Auth.Method {
	case authAuto, authToken, authUniversal:
		if s.Auth.IdentityID != "" || s.Auth.ServiceAccountTokenFile != "" {
			return nil, fmt.Errorf("auth: `identity_id` and `service_account_token_file` are for `method: kubernetes`")
		}
	case authKubernetes:
	default:
		return nil, fmt.Errorf("auth: unknown method %q (known: token, universal, kubernetes)", s.Auth.Method)
	}
	cache, err := logincache.Enabled(s.Auth.Cache)
	switch {
	case err != nil:
		return nil, fmt.Errorf("auth: %w (keyring keeps the login's access token in the OS keyring between runs)", err)
	case cache && s.Auth.Method == authToken:
		return nil, fmt.Errorf("auth: cache applies to methods universal and kubernetes, which log in on every run; method token does not")
	}
	return &provider{
		name:        name,
		siteURL:     site,
		projectID:   s.ProjectID,
		projectSlug: s.ProjectSlug,
		caCertFile:  s.CACertFile,
		auth:        s.Auth,
		env:         env,
		retry:       defaultRetry,
		callTimeout: 60 * time.Second,
		parallel:    8,
		etags:       map[query]string{},
	}, nil
}

// normalizeSiteURL checks a site URL and drops a trailing slash and /api, so
// that the keyring key and messages are the same however it was written.
func normalizeSiteURL(raw string) (string, error) {
	if raw == "" {
		return DefaultSiteURL, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("site_url %q is not an http(s) URL such as %s", raw, DefaultSiteURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("site_url %q must be a plain URL without credentials, query or fragment", raw)
	}
	s := strings.TrimRight(u.String(), "/")
	s = strings.TrimSuffix(s, "/api")
	return s, nil
}

// validPath reports whether path is a folder path Infisical accepts: `/`,
// or `/`-separated names of letters, digits, `_`, `.` and `-`, starting
// with `/`. A loop, not a regexp compiled on every start.
func validPath(path string) bool {
	if path == "/" {
		return true
	}
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return false
	}
	for _, name := range strings.Split(rest, "/") {
		if name == "" || strings.TrimLeft(name, folderNameChars) != "" {
			return false
		}
	}
	return true
}

const folderNameChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"

// ParseSource decodes a source's `environment`, `path`, `secret`,
// `recursive`, `include_imports`, `expand_references` and `tags`.
func (p *provider) ParseSource(src *providers.Source, opts providers.Options) (providers.Ref, error) {
	var s sourceSettings
	if err := opts.Decode(&s); err != nil {
		return nil, err
	}
	r := &ref{query: query{env: strings.TrimSpace(s.Environment), imports: true, expand: true}, secret: s.Secret, tags: s.Tags}
	if s.IncludeImports != nil {
		r.imports = *s.IncludeImports
	}
	if s.ExpandReferences != nil {
		r.expand = *s.ExpandReferences
	}
	if r.env == "" {
		r.env = src.Environment
	}
	if r.env == "" {
		return nil, fmt.Errorf("missing `environment:`, the slug of an environment of the Infisical project (such as dev or prod)")
	}
	path := strings.TrimSpace(s.Path)
	if path == "" {
		path = "/"
	}
	if len(path) > 1 {
		path = strings.TrimRight(path, "/")
	}
	if !validPath(path) {
		return nil, fmt.Errorf("path %q is not an Infisical folder path: it starts with / and names folders of letters, digits, '.', '-' and '_'", s.Path)
	}
	r.path = path
	if r.secret != "" {
		if strings.ContainsAny(r.secret, "/ ") {
			return nil, fmt.Errorf("secret %q must be a secret's key; put its folder in `path:`", r.secret)
		}
		if s.Recursive || len(s.Tags) > 0 {
			return nil, fmt.Errorf("`secret:` reads one secret; it cannot be combined with `recursive` or `tags`")
		}
	}
	r.recursive = s.Recursive
	if src.Version != "" {
		if r.secret == "" {
			return nil, fmt.Errorf("`version:` pins one secret's version; name the secret with `secret:`")
		}
		n, err := strconv.Atoi(src.Version)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("version %q must be a secret version number (1, 2, ...)", src.Version)
		}
		r.version = n
	}
	for _, t := range s.Tags {
		if strings.TrimSpace(t) == "" {
			return nil, fmt.Errorf("tags: a tag slug cannot be empty")
		}
	}
	return r, nil
}

// Close stops the token renewal and closes idle connections.
func (p *provider) Close(ctx context.Context) error {
	p.dropSession()
	p.clientMu.Lock()
	defer p.clientMu.Unlock()
	if p.api != nil {
		p.api.close()
	}
	return nil
}

// where names the site, project and environment of a request in messages.
func (p *provider) where(env string) string {
	project := "project " + p.projectID
	if p.projectID == "" {
		project = "project slug " + p.projectSlug
	}
	return fmt.Sprintf("site %s, %s, env %s", p.siteURL, project, env)
}

var (
	_ providers.Provider  = (*provider)(nil)
	_ providers.Versioner = (*provider)(nil)
	_ providers.Closer    = (*provider)(nil)
	_ providers.Loginer   = (*provider)(nil)
)
