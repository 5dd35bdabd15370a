package awsssm

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

// TestNoInstanceMetadataWithExplicitSettings: with keys and a region given,
// instance metadata is never asked; the control shows the recorder seeing
// it when the SDK does go there.
func TestNoInstanceMetadataWithExplicitSettings(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/imds/one", "1", secure)
	for _, k := range []string{"AWS_EC2_METADATA_DISABLED", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONFIG_FILE",
		"AWS_SHARED_CREDENTIALS_FILE", "AWS_DEFAULTS_MODE"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", t.TempDir())

	t.Run("KeysAndRegionInEnv", func(t *testing.T) {
		rec := mototest.NewRecorder(t, srv.URL)
		p := forMoto(t, srv, rec)
		s := src(t, p, "parameter: /imds/one\nas: ONE")
		fetch(t, p, s)
		versionsOf(t, p, s)
		if rec.SawHost(imdsHost) {
			t.Errorf("instance metadata was asked: %v", rec.Hosts())
		}
	})
	t.Run("ControlNoKeys", func(t *testing.T) {
		rec := mototest.NewRecorder(t, srv.URL)
		opts, err := config.OptionsFromYAML("{}")
		if err != nil {
			t.Fatal(err)
		}
		env := envOf(t, map[string]string{"AWS_REGION": mototest.Region, "AWS_ENDPOINT_URL": srv.URL})
		var stderr bytes.Buffer
		env.Stderr = &stderr
		p, err := newProvider("ssm", opts, env, awsconf.Hooks{HTTPClient: rec.Client()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Fetch(context.Background(), []*providers.Source{src(t, p, "parameter: /imds/one\nas: ONE")})
		if !errors.Is(err, providers.ErrAuth) {
			t.Errorf("no credentials anywhere: got %v, want ErrAuth", err)
		}
		if w := stderr.String(); !strings.HasPrefix(w, `secretrun: warning: aws-ssm "ssm": `) {
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
		_, err = Type().New("ssm", opts, envOf(t, nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("settings %q: error %v, want one mentioning %q", tc.yaml, err, tc.want)
		}
	}
}

func TestEndpointPrecedence(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/ep/one", "1", plainType)
	nowhere := "http://127.0.0.1:1"
	keys := map[string]string{"AWS_ACCESS_KEY_ID": mototest.AccessKeyID, "AWS_SECRET_ACCESS_KEY": mototest.SecretAccessKey, "AWS_REGION": mototest.Region}
	for _, tc := range []struct {
		name, settings string
		vars           map[string]string
	}{
		{"SettingOverEnv", "endpoint: " + srv.URL, map[string]string{"AWS_ENDPOINT_URL_SSM": nowhere, "AWS_ENDPOINT_URL": nowhere}},
		{"ServiceVariableOverGlobal", "{}", map[string]string{"AWS_ENDPOINT_URL_SSM": srv.URL, "AWS_ENDPOINT_URL": nowhere}},
		{"OtherServiceVariableIgnored", "{}", map[string]string{"AWS_ENDPOINT_URL_SECRETS_MANAGER": nowhere, "AWS_ENDPOINT_URL": srv.URL}},
		{"Global", "{}", map[string]string{"AWS_ENDPOINT_URL": srv.URL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := maps.Clone(keys)
			maps.Copy(vars, tc.vars)
			p := newTest(t, tc.settings, vars, awsconf.Hooks{})
			if got := plainValue(t, fetch(t, p, src(t, p, "parameter: /ep/one\nas: ONE"))[0]); got != "1" {
				t.Errorf("another value")
			}
		})
	}
}

func TestAssumeRole(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/role/one", "via-role", secure)
	rec := mototest.NewRecorder(t, srv.URL)
	p := newTest(t, `
assume_role_arn: arn:aws:iam::123456789012:role/reader
external_id: ext-123
session_name: deploy`, srv.Env(), awsconf.Hooks{HTTPClient: rec.Client()})
	s := src(t, p, "parameter: /role/one\nas: ONE")
	for range 2 {
		if got := plainValue(t, fetch(t, p, s)[0]); got != "via-role" {
			t.Errorf("another value")
		}
	}
	if got := rec.Count("AssumeRole"); got != 1 {
		t.Errorf("%d AssumeRole calls, want 1: the role's credentials are cached", got)
	}
}

func TestWebIdentityFromEnv(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/oidc/one", "via-oidc", secure)
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
	rec := mototest.NewRecorder(t, srv.URL)
	p := newTest(t, "{}", vars, awsconf.Hooks{HTTPClient: rec.Client()})
	if got := plainValue(t, fetch(t, p, src(t, p, "parameter: /oidc/one\nas: ONE"))[0]); got != "via-oidc" {
		t.Errorf("another value")
	}
	if got := rec.Count("AssumeRoleWithWebIdentity"); got != 1 {
		t.Errorf("%d AssumeRoleWithWebIdentity calls, want 1", got)
	}
	if rec.SawHost(imdsHost) {
		t.Errorf("instance metadata was asked: %v", rec.Hosts())
	}
}

func TestOneClientPerInstance(t *testing.T) {
	srv := moto.Get(t)
	srv.PutParameter(t, "/reuse/one", "1", plainType)
	rec := mototest.NewRecorder(t, srv.URL)
	p := forMoto(t, srv, rec)
	s := src(t, p, "parameter: /reuse/one\nas: ONE")
	if p.conn.Peek() != nil || len(rec.Hosts()) > 0 {
		t.Fatal("building the provider or parsing a source contacted the backend")
	}
	fetch(t, p, s)
	first := p.conn.Peek()
	fetch(t, p, s)
	versionsOf(t, p, s)
	if p.conn.Peek() != first {
		t.Error("a second call made another client")
	}
}
