package infisical

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// The endpoints of Infisical's REST API the provider calls
// (https://infisical.com/docs/api-reference), under the site URL.
const (
	universalAuthLoginPath  = "/api/v1/auth/universal-auth/login"
	kubernetesAuthLoginPath = "/api/v1/auth/kubernetes-auth/login"
	renewTokenPath          = "/api/v1/auth/token/renew"
	rawSecretsPath          = "/api/v3/secrets/raw"
	foldersPath             = "/api/v1/folders"
)

// client speaks Infisical's REST API over one http.Client, whose kept-alive
// connection carries the login and the requests after it: a start-up costs
// one TCP (and TLS) handshake. It neither retries nor logs: call retries what
// is worth retrying, and errors are described by describe.
type client struct {
	site string
	http *http.Client
}

// newClient builds the provider's client, trusting ca_cert_file beside the
// system's roots when it is set.
func (p *provider) newClient() (*client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if p.caCertFile != "" {
		pem, err := os.ReadFile(p.caCertFile)
		if err != nil {
			return nil, fmt.Errorf("infisical %q: read ca_cert_file: %w", p.name, err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("infisical %q: ca_cert_file %s holds no PEM certificate", p.name, p.caCertFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &client{site: p.siteURL, http: &http.Client{Transport: transport}}, nil
}

func (c *client) close() { c.http.CloseIdleConnections() }

// apiError is an answer other than 2xx or 304, with the message of
// Infisical's error body ({reqId, statusCode, message, error}).
type apiError struct {
	status  int
	name    string // "error": TokenError, NotFound, ...
	message string
}

func (e *apiError) Error() string {
	if e.message == "" {
		return "HTTP " + strconv.Itoa(e.status)
	}
	return "HTTP " + strconv.Itoa(e.status) + ": " + e.message
}

// requestError is a request that got no usable answer: no connection, a
// reset, a certificate that does not verify, a body that does not decode.
// cause is what messages show of it.
type requestError struct {
	err   error
	cause string
}

func (e *requestError) Error() string { return e.cause }
func (e *requestError) Unwrap() error { return e.err }

// errNotModified is a list answered 304 Not Modified to If-None-Match.
var errNotModified = errors.New("not modified")

// request is one API call.
type request struct {
	method, path string
	query        url.Values
	// token is the access token sent as a bearer token; logins send none.
	token string
	// body is sent as JSON when not nil.
	body        any
	ifNoneMatch string
}

// maxErrorBody bounds what is read of an error answer: only its message is
// wanted.
const maxErrorBody = 64 << 10

// do sends req and decodes a 2xx answer's JSON body into out. It returns the
// answer's ETag. The body is always read to its end, so that the connection
// can carry the next request.
func (c *client) do(ctx context.Context, req request, out any) (string, error) {
	var body io.Reader
	if req.body != nil {
		b, err := json.Marshal(req.body)
		if err != nil {
			return "", err
		}
		body = bytes.NewReader(b)
	}
	u := c.site + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return "", err
	}
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", "secretrun")
	if req.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.token)
	}
	if req.ifNoneMatch != "" {
		hr.Header.Set("If-None-Match", req.ifNoneMatch)
	}
	res, err := c.http.Do(hr)
	if err != nil {
		return "", requestFailed(ctx, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxErrorBody))
		res.Body.Close()
	}()
	switch {
	case res.StatusCode == http.StatusNotModified:
		return res.Header.Get("ETag"), errNotModified
	case res.StatusCode < 200 || res.StatusCode > 299:
		e := &apiError{status: res.StatusCode}
		e.name, e.message = errorBody(res.Body)
		return "", e
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			// Not the decoder's message: a syntax error quotes the body,
			// which may hold secret values.
			return "", &requestError{err: err, cause: fmt.Sprintf("the answer to %s %s (HTTP %d, %s) is not the JSON Infisical sends; is site_url an Infisical server?",
				req.method, req.path, res.StatusCode, res.Header.Get("Content-Type"))}
		}
	}
	return res.Header.Get("ETag"), nil
}

// requestFailed keeps the cause of a failed request, the innermost part of
// its message ("connection refused" of "Get <URL>: dial tcp 127.0.0.1:8080:
// connect: connection refused"), and lets a cancelled or timed-out context
// show as such.
func requestFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	cause := err.Error()
	if i := strings.LastIndex(cause, ": "); i >= 0 {
		cause = cause[i+2:]
	}
	return &requestError{err: err, cause: cause}
}

// errorBody reads the error name and message of Infisical's error body, ""
// when it has none (a proxy's page, an empty body).
func errorBody(body io.Reader) (name, message string) {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.NewDecoder(io.LimitReader(body, maxErrorBody)).Decode(&e) != nil {
		return "", ""
	}
	return e.Error, strings.TrimSpace(e.Message)
}

// projectQuery names the project of a secrets request by id or by slug.
func (p *provider) projectQuery() url.Values {
	q := url.Values{}
	if p.projectID != "" {
		q.Set("workspaceId", p.projectID)
	} else {
		q.Set("workspaceSlug", p.projectSlug)
	}
	return q
}

// loginResult is the answer of a login or a token renewal.
type loginResult struct {
	AccessToken       string `json:"accessToken"`
	ExpiresIn         int64  `json:"expiresIn"`
	AccessTokenMaxTTL int64  `json:"accessTokenMaxTTL"`
	TokenType         string `json:"tokenType"`
}

// universalAuthLogin is "Universal Auth: Login".
func (c *client) universalAuthLogin(ctx context.Context, clientID, clientSecret, org string) (loginResult, error) {
	var out loginResult
	_, err := c.do(ctx, request{method: http.MethodPost, path: universalAuthLoginPath, body: struct {
		ClientID         string `json:"clientId"`
		ClientSecret     string `json:"clientSecret"`
		OrganizationSlug string `json:"organizationSlug,omitempty"`
	}{clientID, clientSecret, org}}, &out)
	return out, err
}

// kubernetesAuthLogin is "Kubernetes Auth: Login".
func (c *client) kubernetesAuthLogin(ctx context.Context, identityID, jwt, org string) (loginResult, error) {
	var out loginResult
	_, err := c.do(ctx, request{method: http.MethodPost, path: kubernetesAuthLoginPath, body: struct {
		IdentityID       string `json:"identityId"`
		JWT              string `json:"jwt"`
		OrganizationSlug string `json:"organizationSlug,omitempty"`
	}{identityID, jwt, org}}, &out)
	return out, err
}

// renewToken is "Renew Access Token": it extends the token's TTL.
func (c *client) renewToken(ctx context.Context, token string) (loginResult, error) {
	var out loginResult
	_, err := c.do(ctx, request{method: http.MethodPost, path: renewTokenPath, body: struct {
		AccessToken string `json:"accessToken"`
	}{token}}, &out)
	return out, err
}

// rawSecret is a secret as the raw secrets endpoints answer it.
type rawSecret struct {
	SecretKey   string `json:"secretKey"`
	SecretValue string `json:"secretValue"`
	SecretPath  string `json:"secretPath"`
	Version     int    `json:"version"`
	Tags        []struct {
		Slug string `json:"slug"`
	} `json:"tags"`
}

func (s rawSecret) hasAnyTag(slugs []string) bool {
	for _, t := range s.Tags {
		for _, slug := range slugs {
			if t.Slug == slug {
				return true
			}
		}
	}
	return false
}

type listAnswer struct {
	Secrets []rawSecret `json:"secrets"`
	Imports []struct {
		Secrets []rawSecret `json:"secrets"`
	} `json:"imports"`
}

// listSecrets is "List secrets" (GET /api/v3/secrets/raw). previous, when
// not empty, is sent as If-None-Match: an unchanged listing is answered 304
// and comes back as errNotModified.
//
// The answer is merged as Infisical's own clients merge it: with recursion a
// key listed in several folders keeps the deepest folder's value (the last
// listed); a folder's own secrets win over imported ones, and among imports
// the first that has a key wins.
func (c *client) listSecrets(ctx context.Context, token string, project url.Values, q query, previous string) ([]rawSecret, string, error) {
	v := url.Values{}
	for k, vs := range project {
		v[k] = vs
	}
	v.Set("environment", q.env)
	v.Set("secretPath", q.path)
	v.Set("recursive", strconv.FormatBool(q.recursive))
	v.Set("include_imports", strconv.FormatBool(q.imports))
	v.Set("expandSecretReferences", strconv.FormatBool(q.expand))
	var out listAnswer
	etag, err := c.do(ctx, request{method: http.MethodGet, path: rawSecretsPath, query: v, token: token, ifNoneMatch: previous}, &out)
	if err != nil {
		return nil, etag, err
	}
	index := map[string]int{}
	var secrets []rawSecret
	for _, s := range out.Secrets {
		if i, ok := index[s.SecretKey]; ok {
			secrets[i] = s
			continue
		}
		index[s.SecretKey] = len(secrets)
		secrets = append(secrets, s)
	}
	if q.imports {
		for _, imp := range out.Imports {
			for _, s := range imp.Secrets {
				if _, ok := index[s.SecretKey]; !ok {
					index[s.SecretKey] = len(secrets)
					secrets = append(secrets, s)
				}
			}
		}
	}
	return secrets, etag, nil
}

// retrieveSecret is "Retrieve secret" (GET /api/v3/secrets/raw/{name}), a
// shared secret at its current version or at version when not 0.
func (c *client) retrieveSecret(ctx context.Context, token string, project url.Values, r *ref) (rawSecret, error) {
	v := url.Values{}
	for k, vs := range project {
		v[k] = vs
	}
	v.Set("environment", r.env)
	v.Set("secretPath", r.path)
	v.Set("type", "shared")
	v.Set("include_imports", strconv.FormatBool(r.imports))
	v.Set("expandSecretReferences", strconv.FormatBool(r.expand))
	if r.version != 0 {
		v.Set("version", strconv.Itoa(r.version))
	}
	var out struct {
		Secret rawSecret `json:"secret"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: rawSecretsPath + "/" + url.PathEscape(r.secret), query: v, token: token}, &out)
	return out.Secret, err
}

// listFolders is "List folders" (GET /api/v1/folders): the names of the
// folders directly below path. It takes a project id, not a slug.
func (c *client) listFolders(ctx context.Context, token, projectID, env, path string) ([]string, error) {
	v := url.Values{"workspaceId": {projectID}, "environment": {env}, "path": {path}}
	var out struct {
		Folders []struct {
			Name string `json:"name"`
		} `json:"folders"`
	}
	if _, err := c.do(ctx, request{method: http.MethodGet, path: foldersPath, query: v, token: token}, &out); err != nil {
		return nil, err
	}
	names := make([]string, len(out.Folders))
	for i, f := range out.Folders {
		names[i] = f.Name
	}
	return names, nil
}
