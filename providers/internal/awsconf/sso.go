package awsconf

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"

	"github.com/secretrun/secretrun/providers/internal/awsjson"
)

// ssoService is the SSO portal, and oidcService the SSO OIDC service its
// tokens are refreshed with, as the SDK's endpoint rules have them.
var (
	ssoService = awsjson.Service{
		ID:                    "SSO",
		SigningName:           "awsssoportal",
		HostPrefix:            "portal.sso",
		GovCloudFIPSIsRegular: true,
	}
	oidcService = awsjson.Service{
		ID:                    "SSO OIDC",
		SigningName:           "sso-oauth",
		HostPrefix:            "oidc",
		GovCloudFIPSIsRegular: true,
	}
)

// ssoCredentials is the SDK's ssocreds provider: the role's credentials
// from the SSO portal, for the access token `aws sso login` cached. An
// expired token of an sso-session is refreshed, as the SDK does, with
// the refresh token cached beside it; there is no device authorization
// here, which needs a browser.
type ssoCredentials struct {
	cfg       aws.Config // in the SSO region
	endpoint  string
	oidcAt    string // the SSO OIDC endpoint, "" for AWS's own
	accountID string
	roleName  string
	tokenFile string
	// session is set for a profile of an sso-session, whose token can be
	// refreshed; nil for the legacy sso_* keys.
	session *ssoSession
	profile string
	// login is what to run to get a new token.
	login string
}

// ssoTokenFile is where `aws sso login` caches the token for key, the
// sso-session name or (for the legacy keys) the start URL.
func ssoTokenFile(home, key string) (string, error) {
	if home == "" {
		return "", errors.New("no home directory to find the SSO token cache in")
	}
	sum := sha1.Sum([]byte(key))
	return filepath.Join(home, ".aws", "sso", "cache", hex.EncodeToString(sum[:])+".json"), nil
}

func (s *ssoCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	token, err := s.token(ctx)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("%s: %w: run `%s`", s.profile, err, s.login)
	}
	c, err := awsjson.NewCaller(s.cfg, s.endpoint, ssoService)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("%s: %w", s.profile, &smithy.OperationError{ServiceID: ssoService.ID, OperationName: "GetRoleCredentials", Err: err})
	}
	var out struct {
		RoleCredentials *struct {
			AccessKeyID     string `json:"accessKeyId"`
			SecretAccessKey string `json:"secretAccessKey"`
			SessionToken    string `json:"sessionToken"`
			Expiration      int64  `json:"expiration"`
		} `json:"roleCredentials"`
	}
	req := awsjson.Request{
		Method:    http.MethodGet,
		Path:      "/federation/credentials",
		Query:     url.Values{"account_id": {s.accountID}, "role_name": {s.roleName}},
		Header:    http.Header{"X-Amz-Sso_bearer_token": {token}},
		Anonymous: true,
	}
	err = c.Do(ctx, "GetRoleCredentials", req, func(resp *http.Response, body []byte) error {
		if resp.StatusCode < 200 || resp.StatusCode >= 300 {
			return awsjson.APIError(resp.Header, body)
		}
		if json.Unmarshal(body, &out) != nil || out.RoleCredentials == nil {
			return &smithy.DeserializationError{Err: fmt.Errorf("the GetRoleCredentials response is not the JSON expected (%d bytes)", len(body))}
		}
		return nil
	})
	if err != nil {
		var api smithy.APIError
		if errors.As(err, &api) && api.ErrorCode() == "UnauthorizedException" {
			return aws.Credentials{}, fmt.Errorf("%s: the SSO portal refused the cached token, %w: run `%s`", s.profile, err, s.login)
		}
		return aws.Credentials{}, fmt.Errorf("%s: role %s of account %s: %w", s.profile, s.roleName, s.accountID, err)
	}
	rc := out.RoleCredentials
	return aws.Credentials{
		AccessKeyID:     rc.AccessKeyID,
		SecretAccessKey: rc.SecretAccessKey,
		SessionToken:    rc.SessionToken,
		CanExpire:       true,
		Expires:         time.UnixMilli(rc.Expiration).UTC(),
		Source:          "SSOProvider",
		AccountID:       s.accountID,
	}, nil
}

// ssoToken is a token cache file: its fields are kept as they are, those
// of other tools included, when a refreshed token is written back.
type ssoToken struct {
	fields                               map[string]json.RawMessage
	AccessToken                          string
	ExpiresAt                            time.Time
	RefreshToken, ClientID, ClientSecret string
}

// token is the cached access token, refreshed first if it has expired
// and belongs to an sso-session.
func (s *ssoCredentials) token(ctx context.Context) (string, error) {
	t, err := readSSOToken(s.tokenFile)
	if err != nil {
		return "", err
	}
	if !time.Now().After(t.ExpiresAt) {
		return t.AccessToken, nil
	}
	if s.session == nil {
		return "", fmt.Errorf("the SSO token in %s has expired", s.tokenFile)
	}
	if t.RefreshToken == "" || t.ClientID == "" || t.ClientSecret == "" {
		return "", fmt.Errorf("the SSO token in %s has expired and cannot be refreshed", s.tokenFile)
	}
	if err := s.refresh(ctx, t); err != nil {
		return "", fmt.Errorf("the SSO token in %s has expired and could not be refreshed: %w", s.tokenFile, err)
	}
	return t.AccessToken, nil
}

func readSSOToken(file string) (*ssoToken, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("no SSO token cached: %w", err)
	}
	t := &ssoToken{}
	if err := json.Unmarshal(data, &t.fields); err != nil {
		return nil, fmt.Errorf("the SSO token cache %s is not the JSON expected", file)
	}
	var expiresAt string
	for key, dst := range map[string]*string{"accessToken": &t.AccessToken, "expiresAt": &expiresAt,
		"refreshToken": &t.RefreshToken, "clientId": &t.ClientID, "clientSecret": &t.ClientSecret} {
		if raw, ok := t.fields[key]; ok && json.Unmarshal(raw, dst) != nil {
			return nil, fmt.Errorf("the SSO token cache %s: %s is not a string", file, key)
		}
	}
	if expiresAt != "" {
		if t.ExpiresAt, err = time.Parse(time.RFC3339, expiresAt); err != nil {
			return nil, fmt.Errorf("the SSO token cache %s: expiresAt is not an RFC 3339 time", file)
		}
	}
	if t.AccessToken == "" || t.ExpiresAt.IsZero() {
		return nil, fmt.Errorf("the SSO token cache %s has no accessToken or no expiresAt", file)
	}
	return t, nil
}

// refresh gets a new access token with the refresh token (SSO OIDC's
// CreateToken) and writes it back to the cache, as the SDK does, so that
// the AWS CLI and the next run use it too.
func (s *ssoCredentials) refresh(ctx context.Context, t *ssoToken) error {
	c, err := awsjson.NewCaller(s.cfg, s.oidcAt, oidcService)
	if err != nil {
		return &smithy.OperationError{ServiceID: oidcService.ID, OperationName: "CreateToken", Err: err}
	}
	body, err := json.Marshal(map[string]string{
		"clientId": t.ClientID, "clientSecret": t.ClientSecret,
		"grantType": "refresh_token", "refreshToken": t.RefreshToken,
	})
	if err != nil {
		return err
	}
	var out struct {
		AccessToken  string `json:"accessToken"`
		ExpiresIn    int64  `json:"expiresIn"`
		RefreshToken string `json:"refreshToken"`
	}
	req := awsjson.Request{
		Method:    http.MethodPost,
		Path:      "/token",
		Header:    http.Header{"Content-Type": {"application/json"}},
		Body:      body,
		Anonymous: true,
	}
	err = c.Do(ctx, "CreateToken", req, func(resp *http.Response, body []byte) error {
		if resp.StatusCode < 200 || resp.StatusCode >= 300 {
			return awsjson.APIError(resp.Header, body)
		}
		if json.Unmarshal(body, &out) != nil {
			return &smithy.DeserializationError{Err: fmt.Errorf("the CreateToken response is not the JSON expected (%d bytes)", len(body))}
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.AccessToken = out.AccessToken
	t.ExpiresAt = time.Now().Add(time.Duration(out.ExpiresIn) * time.Second)
	t.RefreshToken = out.RefreshToken
	return writeSSOToken(s.tokenFile, t)
}

// writeSSOToken replaces the cache file at once, with its mode, so that
// a reader never sees half a token.
func writeSSOToken(file string, t *ssoToken) error {
	set := func(key, value string) {
		if value == "" {
			delete(t.fields, key)
			return
		}
		raw, _ := json.Marshal(value)
		t.fields[key] = raw
	}
	set("accessToken", t.AccessToken)
	set("expiresAt", t.ExpiresAt.UTC().Format(time.RFC3339))
	set("refreshToken", t.RefreshToken)
	data, err := json.Marshal(t.fields)
	if err != nil {
		return err
	}
	info, err := os.Stat(file)
	if err != nil {
		return err
	}
	tmp := file + ".tmp-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := os.WriteFile(tmp, data, info.Mode().Perm()); err != nil {
		return fmt.Errorf("cache the refreshed SSO token: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cache the refreshed SSO token: %w", err)
	}
	return nil
}

// loginCredentials are the credentials `aws login` caches for a
// login_session. They are used while they last; refreshing them takes
// a proof-of-possession key secretrun does not handle, so once they have
// expired the message says to log in again.
type loginCredentials struct {
	file    string
	profile string
}

// loginTokenFile is where `aws login` caches the session's credentials:
// AWS_LOGIN_CACHE_DIRECTORY, else ~/.aws/login/cache.
func loginTokenFile(dir, home, session string) (string, error) {
	if dir == "" {
		if home == "" {
			return "", errors.New("no home directory to find the login cache in")
		}
		dir = filepath.Join(home, ".aws", "login", "cache")
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(session)))
	return filepath.Join(dir, hex.EncodeToString(sum[:])+".json"), nil
}

func (l *loginCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	data, err := os.ReadFile(l.file)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("%s: no login session cached (%w): run `aws login --profile %s`", l.profile, err, l.profile)
	}
	var t struct {
		AccessToken *struct {
			AccessKeyID     string    `json:"accessKeyId"`
			SecretAccessKey string    `json:"secretAccessKey"`
			SessionToken    string    `json:"sessionToken"`
			AccountID       string    `json:"accountId"`
			ExpiresAt       time.Time `json:"expiresAt"`
		} `json:"accessToken"`
	}
	if json.Unmarshal(data, &t) != nil || t.AccessToken == nil || t.AccessToken.AccessKeyID == "" ||
		t.AccessToken.SecretAccessKey == "" || t.AccessToken.ExpiresAt.IsZero() {
		return aws.Credentials{}, fmt.Errorf("%s: the login cache %s is not the JSON expected: run `aws login --profile %s`", l.profile, l.file, l.profile)
	}
	a := t.AccessToken
	if !time.Now().Before(a.ExpiresAt) {
		return aws.Credentials{}, fmt.Errorf("%s: the login session's credentials in %s have expired: run `aws login --profile %s`", l.profile, l.file, l.profile)
	}
	return aws.Credentials{
		AccessKeyID:     a.AccessKeyID,
		SecretAccessKey: a.SecretAccessKey,
		SessionToken:    a.SessionToken,
		Source:          "LoginProvider",
		CanExpire:       true,
		Expires:         a.ExpiresAt,
		AccountID:       a.AccountID,
	}, nil
}
