// Package infisicaltest is an in-memory Infisical server for tests. It
// implements the REST endpoints the infisical provider calls, as Infisical's
// public API reference and server code describe them: machine identity
// logins and token renewal, listing and reading secrets with folders,
// imports, recursion, tags and `${...}` reference expansion, ETags, and the
// error bodies and status codes of the real server. No real Infisical server
// can run where these tests run; this one is strict instead, so a provider
// that sends what Infisical would reject (a body without a JSON content type,
// a missing field, a flag other than true or false, a bad path) fails here
// too.
package infisicaltest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Endpoint names, as counted by Server.Count.
const (
	Login          = "login"            // POST /api/v1/auth/universal-auth/login
	KubernetesAuth = "kubernetes-login" // POST /api/v1/auth/kubernetes-auth/login
	Renew          = "renew"            // POST /api/v1/auth/token/renew
	List           = "list"             // GET /api/v3/secrets/raw
	Get            = "get"              // GET /api/v3/secrets/raw/{secretName}
	Folders        = "folders"          // GET /api/v1/folders
)

// Default lifetimes of access tokens, those of a new universal auth identity
// in Infisical (2592000 s = 30 days).
const (
	DefaultTokenTTL    = 2592000 * time.Second
	DefaultTokenMaxTTL = 2592000 * time.Second
)

// Server is a running test server. Its URL is the site URL a provider is
// configured with (without /api).
type Server struct {
	// URL is the site URL, such as http://127.0.0.1:41234.
	URL string

	mu         sync.Mutex
	httpServer *httptest.Server
	projects   map[string]*project
	identities map[string]*Identity // by client id
	kubernetes map[string]*Identity // by identity id
	tokens     map[string]*token
	counts     map[string]int
	stats      Stats
	reject     []int // statuses to answer the next requests with
	seq        int
}

// Stats counts what the server answered, beyond requests per endpoint.
type Stats struct {
	// Requests counts every request, answered or rejected.
	Requests int
	// ListNotModified counts list requests answered 304 Not Modified.
	ListNotModified int
	// ListBodyBytes counts the bytes of list response bodies, errors included.
	ListBodyBytes int
	// RateLimited counts requests answered 429.
	RateLimited int
	// TokenRefusals counts requests refused for their token (missing,
	// malformed, expired or revoked) and renewals refused (expired, past the
	// max TTL): each costs a client a round trip and a new login.
	TokenRefusals int
	// Connections counts the TCP connections clients opened: a client that
	// keeps its connection alive opens one for a login and the requests
	// after it.
	Connections int
}

// Identity is a machine identity with its universal auth (or Kubernetes
// auth) credentials and the projects it is a member of.
type Identity struct {
	ID           string
	ClientID     string
	ClientSecret string
	// KubernetesJWT is the service account token accepted by Kubernetes auth.
	KubernetesJWT string
	// TokenTTL and TokenMaxTTL are the lifetimes of the tokens it gets.
	TokenTTL, TokenMaxTTL time.Duration
	projects              map[string]bool
}

type project struct {
	id, slug string
	envs     map[string]*environment
}

type environment struct {
	slug    string
	folders map[string]*folder // by path: "/", "/api", "/api/v2"
}

type folder struct {
	id      string
	secrets map[string]*secret
	imports []secretImport
}

type secretImport struct{ env, path string }

type secret struct {
	id        string
	key       string
	value     string
	comment   string
	version   int
	tags      []string
	history   map[int]string
	createdAt time.Time
	updatedAt time.Time
}

type token struct {
	identity  *Identity
	createdAt time.Time
	renewedAt time.Time
	ttl       time.Duration // 0: never expires
	maxTTL    time.Duration
	expired   bool
	revoked   bool
}

// New starts a server that t stops at its end.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		projects:   map[string]*project{},
		identities: map[string]*Identity{},
		kubernetes: map[string]*Identity{},
		tokens:     map[string]*token{},
		counts:     map[string]int{},
	}
	s.httpServer = httptest.NewUnstartedServer(s)
	s.httpServer.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.mu.Lock()
			s.stats.Connections++
			s.mu.Unlock()
		}
	}
	s.httpServer.Start()
	s.URL = s.httpServer.URL
	t.Cleanup(s.httpServer.Close)
	return s
}

// Handler lets a test serve the same state elsewhere, such as over TLS.
func (s *Server) Handler() http.Handler { return s }

// AddProject creates a project with the given environment slugs.
func (s *Server) AddProject(id, slug string, environments ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &project{id: id, slug: slug, envs: map[string]*environment{}}
	for _, e := range environments {
		p.envs[e] = &environment{slug: e, folders: map[string]*folder{"/": {id: s.newID(), secrets: map[string]*secret{}}}}
	}
	s.projects[id] = p
}

// AddIdentity creates a machine identity with universal auth credentials,
// member of the given projects, whose tokens live DefaultTokenTTL.
func (s *Server) AddIdentity(clientID, clientSecret string, projectIDs ...string) *Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := &Identity{ID: s.newID(), ClientID: clientID, ClientSecret: clientSecret,
		TokenTTL: DefaultTokenTTL, TokenMaxTTL: DefaultTokenMaxTTL, projects: map[string]bool{}}
	for _, p := range projectIDs {
		id.projects[p] = true
	}
	s.identities[clientID] = id
	return id
}

// AddKubernetesIdentity creates a machine identity that logs in with
// Kubernetes auth, presenting jwt as its service account token.
func (s *Server) AddKubernetesIdentity(identityID, jwt string, projectIDs ...string) *Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := &Identity{ID: identityID, KubernetesJWT: jwt,
		TokenTTL: DefaultTokenTTL, TokenMaxTTL: DefaultTokenMaxTTL, projects: map[string]bool{}}
	for _, p := range projectIDs {
		id.projects[p] = true
	}
	s.kubernetes[identityID] = id
	return id
}

// SetTokenTTL changes the lifetime of the tokens id gets from now on.
func (s *Server) SetTokenTTL(id *Identity, ttl, maxTTL time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id.TokenTTL, id.TokenMaxTTL = ttl, maxTTL
}

// IssueToken returns a non-expiring access token of the identity with
// clientID, as a user would paste into INFISICAL_TOKEN.
func (s *Server) IssueToken(clientID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.identities[clientID]
	if id == nil {
		panic("infisicaltest: no identity " + clientID)
	}
	tok := s.newToken()
	now := time.Now()
	s.tokens[tok] = &token{identity: id, createdAt: now, renewedAt: now}
	return tok
}

// ExpireTokens makes every token issued so far expired, as if its TTL had
// passed.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.expired = true
	}
}

// RevokeTokens revokes every token issued so far.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.revoked = true
	}
}

// RateLimit makes the next n requests fail with 429 Too Many Requests.
func (s *Server) RateLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.reject = append(s.reject, http.StatusTooManyRequests)
	}
}

// AddFolder creates a folder and its parents.
func (s *Server) AddFolder(projectID, env, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.folderFor(projectID, env, path)
}

// SetSecret creates or updates a shared secret, creating its folder and the
// folder's parents; an update raises its version. tags are tag slugs.
func (s *Server) SetSecret(projectID, env, path, key, value string, tags ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.folderFor(projectID, env, path)
	now := time.Now().UTC()
	sec := f.secrets[key]
	if sec == nil {
		sec = &secret{id: s.newID(), key: key, history: map[int]string{}, createdAt: now}
		f.secrets[key] = sec
	}
	sec.version++
	sec.value = value
	sec.tags = slices.Clone(tags)
	sec.history[sec.version] = value
	sec.updatedAt = now
}

// DeleteSecret removes a secret.
func (s *Server) DeleteSecret(projectID, env, path, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.folderFor(projectID, env, path).secrets, key)
}

// AddImport makes the folder at path import the secrets of fromEnv:fromPath,
// after the imports it already has.
func (s *Server) AddImport(projectID, env, path, fromEnv, fromPath string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.folderFor(projectID, env, path)
	f.imports = append(f.imports, secretImport{env: fromEnv, path: cleanPath(fromPath)})
}

// Count returns how many requests reached the endpoint so far.
func (s *Server) Count(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[endpoint]
}

// Counts returns the requests per endpoint so far.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// folderFor returns the folder at path, creating it and its parents; the
// environment must exist. Callers hold s.mu.
func (s *Server) folderFor(projectID, env, path string) *folder {
	p := s.projects[projectID]
	if p == nil || p.envs[env] == nil {
		panic(fmt.Sprintf("infisicaltest: no environment %q in project %q", env, projectID))
	}
	e := p.envs[env]
	path = cleanPath(path)
	cur := "/"
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		if part == "" {
			continue
		}
		cur = joinPath(cur, part)
		if e.folders[cur] == nil {
			e.folders[cur] = &folder{id: s.newID(), secrets: map[string]*secret{}}
		}
	}
	return e.folders[path]
}

func (s *Server) newID() string {
	s.seq++
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", s.seq)
}

func (s *Server) newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "st." + hex.EncodeToString(b)
}

func cleanPath(p string) string {
	p = strings.TrimRight(strings.TrimSpace(p), "/")
	if p == "" {
		return "/"
	}
	return p
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// ServeHTTP routes as Infisical's API does, under /api.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	rw := &countingWriter{ResponseWriter: w}
	endpoint, handle := s.route(r)
	if endpoint != "" {
		s.counts[endpoint]++
	}
	defer func() {
		if endpoint == List {
			s.stats.ListBodyBytes += rw.n
			if rw.status == http.StatusNotModified {
				s.stats.ListNotModified++
			}
		}
	}()
	if handle == nil {
		writeError(rw, http.StatusNotFound, "NotFound", fmt.Sprintf("Route %s:%s not found", r.Method, r.URL.Path))
		return
	}
	if len(s.reject) > 0 {
		status := s.reject[0]
		s.reject = s.reject[1:]
		s.stats.RateLimited++
		// Infisical's rate limiter answers with this body (server/config/rateLimiter.ts).
		writeError(rw, status, "RateLimitExceeded", "Rate limit exceeded. Please try again in 1 minute")
		return
	}
	handle(rw, r)
}

func (s *Server) route(r *http.Request) (string, http.HandlerFunc) {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost && p == "/api/v1/auth/universal-auth/login":
		return Login, s.universalAuthLogin
	case r.Method == http.MethodPost && p == "/api/v1/auth/kubernetes-auth/login":
		return KubernetesAuth, s.kubernetesAuthLogin
	case r.Method == http.MethodPost && p == "/api/v1/auth/token/renew":
		return Renew, s.renewToken
	case r.Method == http.MethodGet && p == "/api/v3/secrets/raw":
		return List, s.listSecrets
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/api/v3/secrets/raw/"):
		return Get, s.getSecret
	case r.Method == http.MethodGet && p == "/api/v1/folders":
		return Folders, s.listFolders
	}
	return "", nil
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int
}

func (w *countingWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += n
	return n, err
}

// writeError answers as Infisical's error handler does
// (server/plugins/error-handler.ts): {reqId, statusCode, message, error}.
func writeError(w http.ResponseWriter, status int, name, message string) {
	writeJSON(w, status, map[string]any{
		"reqId":      "req-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		"statusCode": status,
		"message":    message,
		"error":      name,
	})
}

func writeJSON(w http.ResponseWriter, status int, body any) []byte {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return b
}

// decodeBody reads a JSON body as Fastify does: a JSON content type is
// required, and the route's zod schema rejects missing fields with 422.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, required ...string) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Unsupported Media Type", "Unsupported Media Type: "+mt)
		return false
	}
	var raw map[string]any
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request", "Body is not valid JSON but content-type is set to 'application/json'")
		return false
	}
	for _, k := range required {
		if s, ok := raw[k].(string); !ok || strings.TrimSpace(s) == "" {
			writeError(w, http.StatusUnprocessableEntity, "ValidationFailure", fmt.Sprintf("%s: Required", k))
			return false
		}
	}
	b, _ := json.Marshal(raw)
	_ = json.Unmarshal(b, v)
	return true
}

type loginResponse struct {
	AccessToken       string `json:"accessToken"`
	ExpiresIn         int64  `json:"expiresIn"`
	AccessTokenMaxTTL int64  `json:"accessTokenMaxTTL"`
	TokenType         string `json:"tokenType"`
}

func (s *Server) issue(w http.ResponseWriter, id *Identity) {
	tok := s.newToken()
	now := time.Now()
	s.tokens[tok] = &token{identity: id, createdAt: now, renewedAt: now, ttl: id.TokenTTL, maxTTL: id.TokenMaxTTL}
	writeJSON(w, http.StatusOK, loginResponse{
		AccessToken:       tok,
		ExpiresIn:         int64(id.TokenTTL / time.Second),
		AccessTokenMaxTTL: int64(id.TokenMaxTTL / time.Second),
		TokenType:         "Bearer",
	})
}

// universalAuthLogin follows "Universal Auth: Login" (POST
// /api/v1/auth/universal-auth/login): a client id and secret buy an access
// token; an unknown client id or a wrong secret is 401 "Invalid credentials"
// (identity-ua-service.ts), without saying which.
func (s *Server) universalAuthLogin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ClientID         string `json:"clientId"`
		ClientSecret     string `json:"clientSecret"`
		OrganizationSlug string `json:"organizationSlug"`
	}
	if !decodeBody(w, r, &body, "clientId", "clientSecret") {
		return
	}
	id := s.identities[body.ClientID]
	if id == nil || id.ClientSecret != body.ClientSecret {
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "Invalid credentials")
		return
	}
	s.issue(w, id)
}

// kubernetesAuthLogin follows "Kubernetes Auth: Login" (POST
// /api/v1/auth/kubernetes-auth/login): the identity id and a service account
// JWT, which Infisical checks with the cluster's TokenReview API; a token
// that does not pass is 401.
func (s *Server) kubernetesAuthLogin(w http.ResponseWriter, r *http.Request) {
	var body struct {
		IdentityID string `json:"identityId"`
		JWT        string `json:"jwt"`
	}
	if !decodeBody(w, r, &body, "identityId", "jwt") {
		return
	}
	id := s.kubernetes[body.IdentityID]
	if id == nil {
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Kubernetes auth method not found for identity with ID %s", body.IdentityID))
		return
	}
	if id.KubernetesJWT != strings.TrimSpace(body.JWT) {
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "Access denied: Kubernetes token review failed")
		return
	}
	s.issue(w, id)
}

// renewToken follows "Renew Access Token" (POST /api/v1/auth/token/renew):
// it extends a token's TTL from now, never past its max TTL; an expired
// token or one at its max TTL is 401 and the client must log in again
// (identity-access-token-service.ts).
func (s *Server) renewToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AccessToken string `json:"accessToken"`
	}
	if !decodeBody(w, r, &body, "accessToken") {
		return
	}
	t := s.tokens[body.AccessToken]
	now := time.Now()
	switch {
	case t == nil || t.revoked:
		s.stats.TokenRefusals++
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "Unauthorized")
		return
	case t.expired || (t.ttl > 0 && now.After(t.renewedAt.Add(t.ttl))):
		s.stats.TokenRefusals++
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "Failed to renew MI access token due to TTL expiration")
		return
	case t.maxTTL > 0 && now.After(t.createdAt.Add(t.maxTTL)):
		s.stats.TokenRefusals++
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "Failed to renew MI access token due to Max TTL expiration")
		return
	case t.maxTTL > 0 && now.Add(t.ttl).After(t.createdAt.Add(t.maxTTL)):
		s.stats.TokenRefusals++
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "Failed to renew MI access token past its Max TTL expiration")
		return
	}
	t.renewedAt = now
	writeJSON(w, http.StatusOK, loginResponse{
		AccessToken:       body.AccessToken,
		ExpiresIn:         int64(t.ttl / time.Second),
		AccessTokenMaxTTL: int64(t.maxTTL / time.Second),
		TokenType:         "Bearer",
	})
}

// authenticate checks the bearer token as Infisical's auth plugins do: no
// token is 401 "Token missing" (verify-auth.ts); a token that is not one of
// ours is a malformed JWT and an expired one fails JWT verification, both 403
// TokenError (error-handler.ts); a revoked one is 401.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *Identity {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		s.stats.TokenRefusals++
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "Token missing")
		return nil
	}
	t := s.tokens[tok]
	now := time.Now()
	switch {
	case t == nil:
		s.stats.TokenRefusals++
		writeError(w, http.StatusForbidden, "TokenError", "The provided access token is malformed. Please use a valid token or generate a new one and try again.")
		return nil
	case t.expired || (t.ttl > 0 && now.After(t.renewedAt.Add(t.ttl))) || (t.maxTTL > 0 && now.After(t.createdAt.Add(t.maxTTL))):
		s.stats.TokenRefusals++
		writeError(w, http.StatusForbidden, "TokenError", "Your token has expired. Please re-authenticate.")
		return nil
	case t.revoked:
		s.stats.TokenRefusals++
		writeError(w, http.StatusUnauthorized, "UnauthorizedError", "Unauthorized")
		return nil
	}
	return t.identity
}

// boolParam parses the "true"/"false" query flags, which Infisical's schema
// declares as z.enum(["true", "false"]): anything else is 422.
func boolParam(w http.ResponseWriter, q map[string][]string, name string) (bool, bool) {
	v, ok := q[name]
	if !ok {
		return false, true
	}
	switch v[0] {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	writeError(w, http.StatusUnprocessableEntity, "ValidationFailure", fmt.Sprintf(`%s: Invalid enum value. Expected 'true' | 'false', received '%s'`, name, v[0]))
	return false, false
}

var validPath = regexp.MustCompile(`^/([A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*)?$`)

// resolveProject finds the project of a secrets request: workspaceId, or
// workspaceSlug for machine identities. An unknown slug is 404; a project the
// identity is not a member of, or that does not exist, is 403, as
// permission-service.ts refuses it before looking further.
func (s *Server) resolveProject(w http.ResponseWriter, id *Identity, q map[string][]string) *project {
	projectID := first(q, "workspaceId")
	if projectID == "" {
		if slug := first(q, "workspaceSlug"); slug != "" {
			for _, p := range s.projects {
				if p.slug == slug && id.projects[p.id] {
					projectID = p.id
				}
			}
			if projectID == "" {
				writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Project with slug '%s' not found", slug))
				return nil
			}
		}
	}
	if projectID == "" || first(q, "environment") == "" {
		writeError(w, http.StatusBadRequest, "BadRequest", "Missing project id or environment")
		return nil
	}
	p := s.projects[projectID]
	if p == nil || !id.projects[projectID] {
		writeError(w, http.StatusForbidden, fmt.Sprintf("Identity is not a member of the specified project with ID '%s'", projectID), "You are not allowed to access this resource")
		return nil
	}
	return p
}

func first(q map[string][]string, k string) string {
	if v := q[k]; len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// secretPathParam reads secretPath as the schema does: default "/",
// trailing slash removed, and validated (isValidSecretPath: 400).
func secretPathParam(w http.ResponseWriter, q map[string][]string) (string, bool) {
	p := cleanPath(first(q, "secretPath"))
	if !validPath.MatchString(p) {
		writeError(w, http.StatusBadRequest, "BadRequest", "Invalid secret path. Only alphanumeric characters, dashes, and underscores are allowed.")
		return "", false
	}
	return p, true
}

type rawTag struct {
	ID    string `json:"id"`
	Slug  string `json:"slug"`
	Name  string `json:"name"`
	Color string `json:"color"`
}

type rawSecret struct {
	ID                string   `json:"id"`
	LegacyID          string   `json:"_id"`
	Workspace         string   `json:"workspace"`
	Environment       string   `json:"environment"`
	Version           int      `json:"version"`
	Type              string   `json:"type"`
	SecretKey         string   `json:"secretKey"`
	SecretValue       string   `json:"secretValue"`
	SecretComment     string   `json:"secretComment"`
	SecretPath        string   `json:"secretPath"`
	SecretValueHidden bool     `json:"secretValueHidden"`
	Tags              []rawTag `json:"tags"`
	CreatedAt         string   `json:"createdAt"`
	UpdatedAt         string   `json:"updatedAt"`
}

type rawImport struct {
	SecretPath  string      `json:"secretPath"`
	Environment string      `json:"environment"`
	FolderID    string      `json:"folderId"`
	Secrets     []rawSecret `json:"secrets"`
}

func (s *Server) shape(p *project, env, path string, sec *secret, value string, version int) rawSecret {
	tags := []rawTag{}
	for _, t := range sec.tags {
		tags = append(tags, rawTag{ID: "tag-" + t, Slug: t, Name: t, Color: "#aaaaaa"})
	}
	return rawSecret{
		ID: sec.id, LegacyID: sec.id, Workspace: p.id, Environment: env, Version: version, Type: "shared",
		SecretKey: sec.key, SecretValue: value, SecretComment: sec.comment, SecretPath: path, Tags: tags,
		CreatedAt: sec.createdAt.Format(time.RFC3339Nano), UpdatedAt: sec.updatedAt.Format(time.RFC3339Nano),
	}
}

// folderSecrets returns a folder's secrets sorted by key, expanded when asked.
func (s *Server) folderSecrets(p *project, env, path string, f *folder, expand bool) []rawSecret {
	keys := slices.Sorted(maps.Keys(f.secrets))
	out := make([]rawSecret, 0, len(keys))
	for _, k := range keys {
		sec := f.secrets[k]
		v := sec.value
		if expand {
			v = s.expand(p, env, path, k, v)
		}
		out = append(out, s.shape(p, env, path, sec, v, sec.version))
	}
	return out
}

// listSecrets follows "List secrets" (GET /api/v3/secrets/raw):
//   - a folder that does not exist yields no secrets, not an error, and so
//     does an unknown environment without recursion; with recursive=true an
//     unknown environment is 404 (secret-v2-bridge-service.ts getSecrets,
//     recursivelyGetSecretPaths);
//   - recursive=true lists the folder and every folder below it, each secret
//     with its secretPath;
//   - include_imports=true adds `imports`, one entry per imported folder in
//     import order, which clients merge under the folder's own secrets;
//   - expandSecretReferences=true replaces ${KEY} and ${env.a.b.KEY}
//     references (see expand);
//   - the response carries an ETag, and a request whose If-None-Match names
//     the current one is answered 304 without a body, as RFC 9110 §13.1.2
//     defines and the provider's watch polls rely on.
func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	id := s.authenticate(w, r)
	if id == nil {
		return
	}
	q := r.URL.Query()
	expand, ok1 := boolParam(w, q, "expandSecretReferences")
	if !ok1 {
		return
	}
	recursive, ok2 := boolParam(w, q, "recursive")
	if !ok2 {
		return
	}
	includeImports, ok3 := boolParam(w, q, "include_imports")
	if !ok3 {
		return
	}
	p := s.resolveProject(w, id, q)
	if p == nil {
		return
	}
	path, ok := secretPathParam(w, q)
	if !ok {
		return
	}
	envSlug := first(q, "environment")
	env := p.envs[envSlug]
	secrets := []rawSecret{}
	var folders []string
	switch {
	case env == nil && recursive:
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Environment with slug '%s' in project with ID '%s' not found", envSlug, p.id))
		return
	case env == nil:
	case recursive:
		for fp := range env.folders {
			if fp == path || path == "/" || strings.HasPrefix(fp, path+"/") {
				folders = append(folders, fp)
			}
		}
		sort.Strings(folders)
	case env.folders[path] != nil:
		folders = []string{path}
	}
	var imports []rawImport
	for _, fp := range folders {
		f := env.folders[fp]
		secrets = append(secrets, s.folderSecrets(p, envSlug, fp, f, expand)...)
		if !includeImports {
			continue
		}
		for _, imp := range f.imports {
			ie := p.envs[imp.env]
			if ie == nil || ie.folders[imp.path] == nil {
				continue
			}
			imports = append(imports, rawImport{SecretPath: imp.path, Environment: imp.env, FolderID: ie.folders[imp.path].id,
				Secrets: s.folderSecrets(p, imp.env, imp.path, ie.folders[imp.path], expand)})
		}
	}
	body := map[string]any{"secrets": secrets}
	if includeImports {
		if imports == nil {
			imports = []rawImport{}
		}
		body["imports"] = imports
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// etagMatches is the weak comparison RFC 9110 §13.1.2 prescribes for
// If-None-Match.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// getSecret follows "Retrieve" (GET /api/v3/secrets/raw/{secretName}): a
// missing folder is 404 "Folder not found for the given environment slug &
// secret path", a missing secret 404 "Secret not found" once the folder's
// imports (with include_imports=true) did not have it either, newest import
// first; `version` reads an older version; `type` is shared or personal.
func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) {
	id := s.authenticate(w, r)
	if id == nil {
		return
	}
	q := r.URL.Query()
	name := strings.TrimSpace(strings.TrimPrefix(r.URL.Path, "/api/v3/secrets/raw/"))
	expand, ok1 := boolParam(w, q, "expandSecretReferences")
	if !ok1 {
		return
	}
	includeImports, ok2 := boolParam(w, q, "include_imports")
	if !ok2 {
		return
	}
	typ := first(q, "type")
	if typ == "" {
		typ = "shared"
	}
	if typ != "shared" && typ != "personal" {
		writeError(w, http.StatusUnprocessableEntity, "ValidationFailure", fmt.Sprintf("type: Invalid enum value. Expected 'shared' | 'personal', received '%s'", typ))
		return
	}
	version := 0
	if v := first(q, "version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			writeError(w, http.StatusUnprocessableEntity, "ValidationFailure", "version: Expected number, received nan")
			return
		}
		version = n
	}
	p := s.resolveProject(w, id, q)
	if p == nil {
		return
	}
	path, ok := secretPathParam(w, q)
	if !ok {
		return
	}
	envSlug := first(q, "environment")
	env := p.envs[envSlug]
	var f *folder
	if env != nil {
		f = env.folders[path]
	}
	if f == nil {
		writeError(w, http.StatusNotFound, "NotFound", "Folder not found for the given environment slug & secret path")
		return
	}
	sec := f.secrets[name]
	if typ == "personal" {
		sec = nil // this server holds shared secrets only
	}
	if sec == nil && includeImports {
		for i := len(f.imports) - 1; i >= 0; i-- {
			imp := f.imports[i]
			if ie := p.envs[imp.env]; ie != nil && ie.folders[imp.path] != nil {
				if is := ie.folders[imp.path].secrets[name]; is != nil {
					v := is.value
					if expand {
						v = s.expand(p, imp.env, imp.path, name, v)
					}
					writeJSON(w, http.StatusOK, map[string]any{"secret": s.shape(p, imp.env, imp.path, is, v, is.version)})
					return
				}
			}
		}
	}
	if sec == nil {
		writeError(w, http.StatusNotFound, "NotFound", "Secret not found")
		return
	}
	value, v := sec.value, sec.version
	if version != 0 {
		old, found := sec.history[version]
		if !found {
			writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Secret version %d not found", version))
			return
		}
		value, v = old, version
	}
	if expand {
		value = s.expand(p, envSlug, path, name, value)
	}
	writeJSON(w, http.StatusOK, map[string]any{"secret": s.shape(p, envSlug, path, sec, value, v)})
}

// listFolders follows "List folders" (GET /api/v1/folders): the folders
// directly below `path`; an unknown environment is 404 and a path that does
// not exist yields no folders (secret-folder-service.ts getFolders).
func (s *Server) listFolders(w http.ResponseWriter, r *http.Request) {
	id := s.authenticate(w, r)
	if id == nil {
		return
	}
	q := r.URL.Query()
	if first(q, "workspaceId") == "" && first(q, "projectId") == "" {
		writeError(w, http.StatusUnprocessableEntity, "ValidationFailure", "workspaceId: Required")
		return
	}
	if first(q, "workspaceId") == "" {
		q["workspaceId"] = q["projectId"]
	}
	p := s.resolveProject(w, id, q)
	if p == nil {
		return
	}
	envSlug := first(q, "environment")
	env := p.envs[envSlug]
	if env == nil {
		writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Environment with slug '%s' in project with ID '%s' not found", envSlug, p.id))
		return
	}
	q.Set("secretPath", first(q, "path"))
	path, ok := secretPathParam(w, q)
	if !ok {
		return
	}
	type rawFolder struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		Version  int    `json:"version"`
		EnvID    string `json:"envId"`
		ParentID string `json:"parentId"`
	}
	folders := []rawFolder{}
	if parent := env.folders[path]; parent != nil {
		for fp, f := range env.folders {
			if fp == path {
				continue
			}
			dir, name := fp[:strings.LastIndex(fp, "/")], fp[strings.LastIndex(fp, "/")+1:]
			if dir == "" {
				dir = "/"
			}
			if dir == path {
				folders = append(folders, rawFolder{ID: f.id, Name: name, Version: 1, EnvID: envSlug, ParentID: parent.id})
			}
		}
	}
	sort.Slice(folders, func(i, j int) bool { return folders[i].Name < folders[j].Name })
	writeJSON(w, http.StatusOK, map[string]any{"folders": folders})
}

// referencePattern is Infisical's INTERPOLATION_PATTERN_STRING
// (secret-reference-fns.ts).
var referencePattern = regexp.MustCompile(`\$\{([a-zA-Z0-9\-_.@]+)\}`)

// maxReferenceDepth is MAX_SECRET_REFERENCE_DEPTH.
const maxReferenceDepth = 10

// expand resolves references as Infisical's expandSecretReferencesFactory
// does: ${KEY} names a secret in the same environment and folder,
// ${env.a.b.KEY} one in environment env at folder /a/b (${env.KEY} at /);
// referenced values are expanded in turn, at most maxReferenceDepth deep and
// never around a cycle; a reference to a secret that does not exist, or to
// another project (${@slug...}, not enabled here), is left as written.
func (s *Server) expand(p *project, env, path, key, value string) string {
	visited := map[string]bool{env + ":" + path + ":" + key: true}
	return s.expandValue(p, env, path, value, 0, visited)
}

func (s *Server) expandValue(p *project, env, path, value string, depth int, visited map[string]bool) string {
	if depth > maxReferenceDepth {
		return value
	}
	return referencePattern.ReplaceAllStringFunc(value, func(ref string) string {
		parts := strings.Split(ref[2:len(ref)-1], ".")
		renv, rpath, rkey := env, path, parts[0]
		if len(parts) > 1 {
			if strings.HasPrefix(parts[0], "@") {
				return ref
			}
			renv, rkey = parts[0], parts[len(parts)-1]
			rpath = "/" + strings.Join(slices.DeleteFunc(slices.Clone(parts[1:len(parts)-1]), func(s string) bool { return s == "" }), "/")
		}
		e := p.envs[renv]
		if e == nil || e.folders[rpath] == nil || e.folders[rpath].secrets[rkey] == nil {
			return ref
		}
		target := e.folders[rpath].secrets[rkey].value
		id := renv + ":" + rpath + ":" + rkey
		if visited[id] {
			return target
		}
		next := maps.Clone(visited)
		next[id] = true
		return s.expandValue(p, renv, rpath, target, depth+1, next)
	})
}
