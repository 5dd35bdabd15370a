package infisicaltest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRejectsWhatInfisicalRejects drives the server with raw HTTP, so that
// its strictness does not depend on what a client happens to send.
func TestRejectsWhatInfisicalRejects(t *testing.T) {
	s := New(t)
	s.AddProject("p1", "shop", "prod")
	s.AddProject("p2", "other", "prod")
	s.AddIdentity("id", "secret", "p1")
	s.SetSecret("p1", "prod", "/api", "K", "v")
	token := s.IssueToken("id")

	do := func(method, path, token, body string, header ...string) (int, map[string]any, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var m map[string]any
		if len(b) > 0 {
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s %s: body is not JSON: %q", method, path, b)
			}
		}
		return res.StatusCode, m, res.Header
	}
	list := "/api/v3/secrets/raw?workspaceId=p1&environment=prod&secretPath=/api"

	cases := []struct {
		name, method, path, token, body string
		status                          int
		errorName                       string
	}{
		{"no token", "GET", list, "", "", 401, "UnauthorizedError"},
		{"garbage token", "GET", list, "nope", "", 403, "TokenError"},
		{"wrong project", "GET", strings.Replace(list, "p1", "p2", 1), token, "", 403, ""},
		{"unknown project slug", "GET", "/api/v3/secrets/raw?workspaceSlug=nope&environment=prod", token, "", 404, "NotFound"},
		{"no environment", "GET", "/api/v3/secrets/raw?workspaceId=p1", token, "", 400, "BadRequest"},
		{"unknown environment, recursive", "GET", strings.Replace(list, "prod", "qa", 1) + "&recursive=true", token, "", 404, "NotFound"},
		{"flag not true/false", "GET", list + "&recursive=yes", token, "", 422, "ValidationFailure"},
		{"bad path", "GET", "/api/v3/secrets/raw?workspaceId=p1&environment=prod&secretPath=api%20x", token, "", 400, "BadRequest"},
		{"missing secret", "GET", "/api/v3/secrets/raw/NOPE?workspaceId=p1&environment=prod&secretPath=/api", token, "", 404, "NotFound"},
		{"missing folder", "GET", "/api/v3/secrets/raw/K?workspaceId=p1&environment=prod&secretPath=/nope", token, "", 404, "NotFound"},
		{"folders of unknown env", "GET", "/api/v1/folders?workspaceId=p1&environment=qa", token, "", 404, "NotFound"},
		{"wrong client secret", "POST", "/api/v1/auth/universal-auth/login", "", `{"clientId":"id","clientSecret":"x"}`, 401, "UnauthorizedError"},
		{"login without secret", "POST", "/api/v1/auth/universal-auth/login", "", `{"clientId":"id"}`, 422, "ValidationFailure"},
		{"renew unknown token", "POST", "/api/v1/auth/token/renew", "", `{"accessToken":"nope"}`, 401, "UnauthorizedError"},
	}
	for _, c := range cases {
		status, body, _ := do(c.method, c.path, c.token, c.body)
		if status != c.status {
			t.Errorf("%s: status %d, want %d (%v)", c.name, status, c.status, body)
			continue
		}
		for _, k := range []string{"reqId", "statusCode", "message", "error"} {
			if _, ok := body[k]; !ok {
				t.Errorf("%s: error body lacks %q: %v", c.name, k, body)
			}
		}
		if c.errorName != "" && body["error"] != c.errorName {
			t.Errorf("%s: error %v, want %s", c.name, body["error"], c.errorName)
		}
	}

	// A missing folder without recursion is an empty list, as in Infisical.
	status, body, _ := do("GET", "/api/v3/secrets/raw?workspaceId=p1&environment=prod&secretPath=/nope", token, "")
	if status != 200 || len(body["secrets"].([]any)) != 0 {
		t.Errorf("missing folder: %d %v", status, body)
	}

	// ETag and If-None-Match.
	status, _, h := do("GET", list, token, "")
	etag := h.Get("ETag")
	if status != 200 || etag == "" {
		t.Fatalf("list: %d, ETag %q", status, etag)
	}
	before := s.Stats().ListBodyBytes
	if status, body, _ := do("GET", list, token, "", "If-None-Match", etag); status != 304 || body != nil {
		t.Errorf("If-None-Match with the current ETag: %d %v", status, body)
	}
	if s.Stats().ListBodyBytes != before || s.Stats().ListNotModified != 1 {
		t.Errorf("a 304 counted a body: %+v", s.Stats())
	}
	s.SetSecret("p1", "prod", "/api", "K", "v2")
	if status, _, _ := do("GET", list, token, "", "If-None-Match", etag); status != 200 {
		t.Errorf("If-None-Match after a change: %d", status)
	}

	// Expiry.
	s.ExpireTokens()
	status, body, _ = do("GET", list, token, "")
	if status != 403 || body["error"] != "TokenError" {
		t.Errorf("expired token: %d %v", status, body)
	}
	if n := s.Count(List); n < 8 {
		t.Errorf("list requests counted: %d", n)
	}
}

// TestCountsTokenRefusals checks that Stats tells refused tokens apart from
// other refusals, as tests of token renewal rely on.
func TestCountsTokenRefusals(t *testing.T) {
	s := New(t)
	s.AddProject("p1", "shop", "prod")
	s.AddIdentity("id", "secret", "p1")
	s.AddProject("p2", "other", "prod")
	token := s.IssueToken("id")
	get := func(path, token string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	list := "/api/v3/secrets/raw?workspaceId=p1&environment=prod"
	get(list, token)
	get(strings.Replace(list, "p1", "p2", 1), token) // not a member: refused, but not for the token
	if n := s.Stats().TokenRefusals; n != 0 {
		t.Fatalf("%d token refusals before any bad token", n)
	}
	get(list, "")
	get(list, "nope")
	s.ExpireTokens()
	get(list, token)
	if n := s.Stats().TokenRefusals; n != 3 {
		t.Errorf("%d token refusals, want 3 (missing, malformed, expired)", n)
	}
}
