package awsconf

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// portal is an SSO portal and SSO OIDC service: it gives the role's
// credentials for the access token it issued, and new tokens for its
// refresh token.
type portal struct {
	*httptest.Server
	accessToken  string
	refreshToken string
	refreshes    atomic.Int32
}

func newPortal(t *testing.T) *portal {
	p := &portal{accessToken: "access-1", refreshToken: "refresh-1"}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/federation/credentials":
			if r.Header.Get("X-Amz-Sso_bearer_token") != p.accessToken || r.Header.Get("Authorization") != "" {
				w.Header().Set("X-Amzn-Errortype", "UnauthorizedException")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"message":"Session token not found or invalid"}`)
				return
			}
			q := r.URL.Query()
			fmt.Fprintf(w, `{"roleCredentials":{"accessKeyId":"ASIA%s%s","secretAccessKey":"s","sessionToken":"t","expiration":%d}}`,
				q.Get("account_id"), q.Get("role_name"), time.Now().Add(time.Hour).UnixMilli())
		case r.Method == http.MethodPost && r.URL.Path == "/token":
			var in map[string]string
			if json.NewDecoder(r.Body).Decode(&in) != nil || in["grantType"] != "refresh_token" || in["refreshToken"] != p.refreshToken ||
				in["clientId"] != "client-1" || in["clientSecret"] != "client-secret-1" {
				w.Header().Set("X-Amzn-Errortype", "InvalidGrantException")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"error":"invalid_grant"}`)
				return
			}
			p.refreshes.Add(1)
			p.accessToken, p.refreshToken = "access-2", "refresh-2"
			fmt.Fprint(w, `{"accessToken":"access-2","expiresIn":3600,"refreshToken":"refresh-2","tokenType":"Bearer"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.Close)
	return p
}

const ssoConfig = "[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Reader\n" +
	"[sso-session corp]\nsso_region = eu-central-1\nsso_start_url = https://corp.awsapps.com/start\n"

// loadSSO loads the profile dev of config in a home whose token cache
// holds token for the session corp, or for the legacy keys' start URL.
func loadSSO(t *testing.T, p *portal, config, token string) (Loaded, string) {
	t.Helper()
	home := t.TempDir()
	key := "corp"
	if !strings.Contains(config, "sso_session") {
		key = "https://corp.awsapps.com/start"
	}
	cache := filepath.Join(home, ".aws", "sso", "cache", sha1Hex(key)+".json")
	if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".aws", "config"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if token != "" {
		if err := os.WriteFile(cache, []byte(token), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]string{"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_SSO": p.URL, "AWS_ENDPOINT_URL_SSO_OIDC": p.URL}
	l, err := Load(context.Background(), Request{
		Who:      `aws-ssm "t"`,
		Settings: Settings{Profile: "dev"},
		Env:      providers.Env{Getenv: func(k string) string { return vars[k] }, HomeDir: home},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l, cache
}

func TestSSORoleCredentials(t *testing.T) {
	p := newPortal(t)
	valid := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	l, _ := loadSSO(t, p, ssoConfig, `{"accessToken":"access-1","expiresAt":"`+valid+`"}`)
	creds, err := l.Config.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "ASIA111122223333Reader" || creds.AccountID != "111122223333" || !creds.CanExpire {
		t.Errorf("credentials %s of account %s: not the role's", creds.AccessKeyID, creds.AccountID)
	}
}

// TestSSOTokenRefreshed: an expired token of an sso-session is refreshed
// with its refresh token once, and the cache file keeps its mode and the
// fields of other tools, so that the AWS CLI goes on using it.
func TestSSOTokenRefreshed(t *testing.T) {
	p := newPortal(t)
	expired := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	l, cache := loadSSO(t, p, ssoConfig, `{"accessToken":"access-1","expiresAt":"`+expired+`","refreshToken":"refresh-1",`+
		`"clientId":"client-1","clientSecret":"client-secret-1","registrationExpiresAt":"2099-01-01T00:00:00Z","region":"eu-central-1"}`)
	for range 2 {
		if _, err := l.Config.Credentials.Retrieve(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.refreshes.Load(); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	info, err := os.Stat(cache)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o640 {
		t.Errorf("the cache's mode became %v", info.Mode().Perm())
	}
	data, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	expires, _ := time.Parse(time.RFC3339, got["expiresAt"])
	if got["accessToken"] != "access-2" || got["refreshToken"] != "refresh-2" || time.Until(expires) < 50*time.Minute {
		t.Errorf("the cache does not hold the new token")
	}
	if got["registrationExpiresAt"] != "2099-01-01T00:00:00Z" || got["region"] != "eu-central-1" || got["clientId"] != "client-1" {
		t.Errorf("the cache lost fields it had: %v", got)
	}
	matches, _ := filepath.Glob(cache + ".tmp-*")
	if len(matches) > 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

// TestSSOMessages: what to run is said whenever the token is what fails,
// and the tokens themselves are never shown.
func TestSSOMessages(t *testing.T) {
	valid := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	expired := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	legacy := "[profile dev]\nsso_region = eu-central-1\nsso_start_url = https://corp.awsapps.com/start\nsso_account_id = 1\nsso_role_name = R\n"
	for _, tc := range []struct {
		name, config, token string
		want                []string
	}{
		{"NoCache", ssoConfig, "", []string{"no SSO token cached", "aws sso login --profile dev"}},
		{"NotJSON", ssoConfig, "access-1 oops", []string{"not the JSON expected", "aws sso login --profile dev"}},
		{"NoExpiry", ssoConfig, `{"accessToken":"access-1"}`, []string{"no expiresAt", "aws sso login --profile dev"}},
		{"ExpiredNoRefresh", ssoConfig, `{"accessToken":"access-1","expiresAt":"` + expired + `"}`, []string{"expired and cannot be refreshed", "aws sso login --profile dev"}},
		{"RefreshRefused", ssoConfig, `{"accessToken":"access-1","expiresAt":"` + expired + `","refreshToken":"stale","clientId":"client-1","clientSecret":"client-secret-1"}`,
			[]string{"could not be refreshed", "InvalidGrantException", "aws sso login --profile dev"}},
		{"Revoked", ssoConfig, `{"accessToken":"revoked-access","expiresAt":"` + valid + `"}`, []string{"refused the cached token", "UnauthorizedException", "aws sso login --profile dev"}},
		{"LegacyExpired", legacy, `{"accessToken":"access-1","expiresAt":"` + expired + `"}`, []string{"has expired", "aws sso login --profile dev"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPortal(t)
			l, _ := loadSSO(t, p, tc.config, tc.token)
			_, err := l.Config.Credentials.Retrieve(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, "profile dev") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			for _, secret := range []string{"access-1", "revoked-access", "stale", "client-secret-1"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("%q shows %q", err, secret)
				}
			}
		})
	}
}
