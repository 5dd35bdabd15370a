package awssm

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

const imdsHost = "169.254.169.254"

// TestNoInstanceMetadataWithExplicitSettings runs with a transport that
// refuses every host but moto's and records them: with keys and a region
// given, instance metadata is never asked. The controls show the same
// transport catching it when the SDK does go there.
func TestNoInstanceMetadataWithExplicitSettings(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "imds/one", `{"V":"1"}`)
	// Nothing from the machine running the tests may point the SDK
	// elsewhere.
	for _, k := range []string{"AWS_EC2_METADATA_DISABLED", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONFIG_FILE",
		"AWS_SHARED_CREDENTIALS_FILE", "AWS_DEFAULTS_MODE"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", t.TempDir())

	t.Run("KeysAndRegionInEnv", func(t *testing.T) {
		rec := newRecorder(t, srv.URL)
		p := forMoto(t, srv, rec)
		s := src(t, p, "secret: imds/one")
		fetch(t, p, s)
		if _, err := p.Versions(context.Background(), []*providers.Source{s}); err != nil {
			t.Fatal(err)
		}
		if rec.SawHost(imdsHost) {
			t.Errorf("instance metadata was asked: %v", rec.Hosts())
		}
	})
	t.Run("RegionInSettings", func(t *testing.T) {
		vars := srv.Env()
		delete(vars, "AWS_REGION")
		rec := newRecorder(t, srv.URL)
		p := newTest(t, "region: "+mototest.Region, vars, awsconf.Hooks{HTTPClient: rec.Client()})
		fetch(t, p, src(t, p, "secret: imds/one"))
		if rec.SawHost(imdsHost) {
			t.Errorf("instance metadata was asked: %v", rec.Hosts())
		}
	})
	t.Run("ControlNoRegion", func(t *testing.T) {
		vars := srv.Env()
		delete(vars, "AWS_REGION")
		rec := newRecorder(t, srv.URL)
		p := newTest(t, "{}", vars, awsconf.Hooks{HTTPClient: rec.Client()})
		_, err := p.Fetch(context.Background(), []*providers.Source{src(t, p, "secret: imds/one")})
		if err == nil || !strings.Contains(err.Error(), "no region") {
			t.Errorf("no region: got %v", err)
		}
		if !rec.SawHost(imdsHost) {
			t.Errorf("with no region the SDK should ask instance metadata, and the recorder should see it: %v", rec.Hosts())
		}
	})
	t.Run("ControlNoKeys", func(t *testing.T) {
		rec := newRecorder(t, srv.URL)
		opts, err := config.OptionsFromYAML("{}")
		if err != nil {
			t.Fatal(err)
		}
		env := envOf(t, map[string]string{"AWS_REGION": mototest.Region, "AWS_ENDPOINT_URL": srv.URL})
		var stderr bytes.Buffer
		env.Stderr = &stderr
		p, err := newProvider("aws", opts, env, awsconf.Hooks{HTTPClient: rec.Client()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Fetch(context.Background(), []*providers.Source{src(t, p, "secret: imds/one")})
		if !errors.Is(err, providers.ErrAuth) {
			t.Errorf("no credentials anywhere: got %v, want ErrAuth", err)
		}
		// The SDK warns that it falls back to IMDSv1; in secretrun's format.
		if w := stderr.String(); !strings.HasPrefix(w, `secretrun: warning: aws-secrets-manager "aws": `) {
			t.Errorf("SDK warning not in secretrun's format: %q", w)
		}
		if !rec.SawHost(imdsHost) {
			t.Errorf("with no keys the SDK should try instance metadata, and the recorder should see it: %v", rec.Hosts())
		}
	})
}

func TestSettingsAreStrict(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"regoin: eu-west-1", "regoin"},
		{"region: [a]", "wrong type"},
		{"external_id: x", "assume_role_arn"},
		{"session_name: x", "assume_role_arn"},
		{"endpoint: localhost:4566", "http"},
	} {
		opts, err := config.OptionsFromYAML(tc.yaml)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Type().New("aws", opts, envOf(t, nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("settings %q: error %v, want one mentioning %q", tc.yaml, err, tc.want)
		}
	}
	p := newTest(t, "region: eu-west-1", nil, awsconf.Hooks{})
	_, err := config.SourceFromYAML(p, "aws", "secret: a\nversion_stag: AWSPREVIOUS")
	if err == nil || !strings.Contains(err.Error(), "version_stag") || !strings.Contains(err.Error(), "test.yaml:") {
		t.Errorf("unknown source key: %v", err)
	}
}

func TestAssumeRole(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "role/one", `{"V":"via-role"}`)
	rec := newRecorder(t, srv.URL)
	p := newTest(t, `
assume_role_arn: arn:aws:iam::123456789012:role/reader
external_id: ext-123
session_name: deploy`, srv.Env(), awsconf.Hooks{HTTPClient: rec.Client()})
	s := src(t, p, "secret: role/one")
	for range 2 {
		if got := values(t, fetch(t, p, s)[0]); got["V"] != "via-role" {
			t.Errorf("wrong fields")
		}
	}
	if got := rec.Count("AssumeRole"); got != 1 {
		t.Errorf("%d AssumeRole calls, want 1: the role's credentials are cached", got)
	}
}

func TestWebIdentityFromEnv(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "oidc/one", `{"V":"via-oidc"}`)
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("eyJhbGciOiJub25lIn0.eyJzdWIiOiJjaSJ9."), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"AWS_REGION":                  mototest.Region,
		"AWS_ENDPOINT_URL":            srv.URL,
		"AWS_ROLE_ARN":                "arn:aws:iam::123456789012:role/ci",
		"AWS_WEB_IDENTITY_TOKEN_FILE": token,
	}
	rec := newRecorder(t, srv.URL)
	p := newTest(t, "{}", vars, awsconf.Hooks{HTTPClient: rec.Client()})
	if got := values(t, fetch(t, p, src(t, p, "secret: oidc/one"))[0]); got["V"] != "via-oidc" {
		t.Errorf("wrong fields")
	}
	if got := rec.Count("AssumeRoleWithWebIdentity"); got != 1 {
		t.Errorf("%d AssumeRoleWithWebIdentity calls, want 1", got)
	}
	if rec.SawHost(imdsHost) {
		t.Errorf("instance metadata was asked: %v", rec.Hosts())
	}
}

func TestProfileFromSharedConfig(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "profile/one", `{"V":"via-profile"}`)
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := "[profile dev]\nregion = " + mototest.Region + "\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = from-profile\n"
	if err := os.WriteFile(filepath.Join(home, ".aws", "config"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t, srv.URL)
	opts, err := config.OptionsFromYAML("profile: dev")
	if err != nil {
		t.Fatal(err)
	}
	env := envOf(t, map[string]string{"AWS_ENDPOINT_URL": srv.URL})
	env.HomeDir = home
	p, err := newProvider("aws", opts, env, awsconf.Hooks{HTTPClient: rec.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(t, fetch(t, p, src(t, p, "secret: profile/one"))[0]); got["V"] != "via-profile" {
		t.Errorf("wrong fields")
	}
	if p.conn.Peek().loaded.Config.Region != mototest.Region {
		t.Errorf("region %q, want the profile's %q", p.conn.Peek().loaded.Config.Region, mototest.Region)
	}
}

// TestErrorsNeverShowValues gathers every error message a run can produce
// for secrets whose values are known, and looks for those values.
func TestErrorsNeverShowValues(t *testing.T) {
	srv := moto.Get(t)
	secrets := map[string]string{
		"leak/json-bad":  `{"TOKEN": "leak-canary-1" oops}`,
		"leak/plain":     "leak-canary-2",
		"leak/array":     `["leak-canary-3"]`,
		"leak/nested":    `{"A": {"B": "leak-canary-4"}}`,
		"leak/truncated": `{"TOKEN": "leak-canary-5`,
	}
	for name, v := range secrets {
		srv.CreateString(t, name, v)
	}
	p := forMoto(t, srv, newRecorder(t, srv.URL))
	var srcs []*providers.Source
	for name := range maps.Keys(secrets) {
		srcs = append(srcs, src(t, p, "secret: "+name+"\nkeys: [TOKEN]"))
	}
	srcs = append(srcs, src(t, p, "secret_prefix: leak/"))
	var msgs []string
	for _, r := range fetch(t, p, srcs...) {
		if r.Err != nil {
			msgs = append(msgs, r.Err.Error())
		}
	}
	if len(msgs) < 4 {
		t.Fatalf("expected errors for the malformed secrets, got %d", len(msgs))
	}
	for _, m := range msgs {
		if strings.Contains(m, "leak-canary") || strings.Contains(m, "oops") {
			t.Errorf("error shows a value: %s", m)
		}
	}
}

func TestEndpointPrecedence(t *testing.T) {
	srv := moto.Get(t)
	srv.CreateString(t, "ep/one", `{"V":"1"}`)
	nowhere := "http://127.0.0.1:1"
	keys := map[string]string{"AWS_ACCESS_KEY_ID": mototest.AccessKeyID, "AWS_SECRET_ACCESS_KEY": mototest.SecretAccessKey, "AWS_REGION": mototest.Region}
	for _, tc := range []struct {
		name, settings string
		vars           map[string]string
	}{
		{"SettingOverEnv", "endpoint: " + srv.URL, map[string]string{"AWS_ENDPOINT_URL_SECRETS_MANAGER": nowhere, "AWS_ENDPOINT_URL": nowhere}},
		{"ServiceVariableOverGlobal", "{}", map[string]string{"AWS_ENDPOINT_URL_SECRETS_MANAGER": srv.URL, "AWS_ENDPOINT_URL": nowhere}},
		{"Global", "{}", map[string]string{"AWS_ENDPOINT_URL": srv.URL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := maps.Clone(keys)
			maps.Copy(vars, tc.vars)
			p := newTest(t, tc.settings, vars, awsconf.Hooks{})
			if got := values(t, fetch(t, p, src(t, p, "secret: ep/one"))[0]); got["V"] != "1" {
				t.Errorf("wrong fields")
			}
		})
	}
}
