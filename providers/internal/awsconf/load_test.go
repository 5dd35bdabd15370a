package awsconf

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/providers"
)

// loadIn loads the profile dev of config in a fresh home, with Env
// holding vars and environ, and the process's own environment left out.
func loadIn(t *testing.T, config string, vars map[string]string, environ []string) (Loaded, *fakeAWS, error) {
	t.Helper()
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".aws", "config"), []byte(strings.ReplaceAll(config, "$HOME", home)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"creds.sh", "leaky.sh"} {
		if err := os.WriteFile(filepath.Join(home, name), []byte(scripts[name]), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	fake := &fakeAWS{}
	l, err := Load(context.Background(), Request{
		Who:      `aws-ssm "t"`,
		Settings: Settings{Region: "eu-west-1"},
		Env: providers.Env{Getenv: func(k string) string { return vars[k] }, Environ: func() []string { return environ },
			HomeDir: home},
		Hooks: Hooks{HTTPClient: fake.client()},
	})
	return l, fake, err
}

var scripts = map[string]string{
	// creds.sh names the key after a variable of its environment.
	"creds.sh": `#!/bin/sh
printf '{"Version": 1, "AccessKeyId": "AKID%s", "SecretAccessKey": "s"}' "$KEY_SUFFIX"
`,
	"leaky.sh": `#!/bin/sh
printf '{"Version": 1, "AccessKeyId": "AKID", "SecretAccessKey": "leak-canary" oops'
`,
}

// TestProcessRunsInSecretrunsEnvironment: credential_process gets the
// environment of Env, not the test process's.
func TestProcessRunsInSecretrunsEnvironment(t *testing.T) {
	t.Setenv("KEY_SUFFIX", "FROMPROCESS")
	l, _, err := loadIn(t, "[profile dev]\ncredential_process = $HOME/creds.sh\n",
		map[string]string{"AWS_PROFILE": "dev"}, []string{"PATH=" + os.Getenv("PATH"), "KEY_SUFFIX=FROMENV"})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := l.Config.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "AKIDFROMENV" {
		t.Errorf("key %s, want the one made with Env's environment", creds.AccessKeyID)
	}
}

// TestProcessOutputNeverShown: a reply that cannot be read holds keys; the
// message gives its length, not its text.
func TestProcessOutputNeverShown(t *testing.T) {
	l, _, err := loadIn(t, "[profile dev]\ncredential_process = $HOME/leaky.sh\n", map[string]string{"AWS_PROFILE": "dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Config.Credentials.Retrieve(context.Background())
	if err == nil {
		t.Fatal("an unreadable reply gave credentials")
	}
	if strings.Contains(err.Error(), "leak-canary") || strings.Contains(err.Error(), "oops") {
		t.Errorf("the reply is in the message: %v", err)
	}
	for _, want := range []string{"profile dev", "credential_process", "not the JSON expected"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

// TestOnlyEnvCounts: keys, a profile and files named in the process's own
// environment are not used; Env says nothing of them.
func TestOnlyEnvCounts(t *testing.T) {
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "config"), []byte("[profile leak]\naws_access_key_id = AKIDLEAK\naws_secret_access_key = s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "AKIDPROCESS", "AWS_SECRET_ACCESS_KEY": "s", "AWS_PROFILE": "leak",
		"AWS_CONFIG_FILE": filepath.Join(other, "config"), "AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_USE_FIPS_ENDPOINT": "true"} {
		t.Setenv(k, v)
	}
	l, fake, err := loadIn(t, "", map[string]string{"AWS_EC2_METADATA_DISABLED": "true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Endpoint != "" || l.Config.BaseEndpoint != nil {
		t.Errorf("an endpoint of the process's environment is used")
	}
	if _, err := l.Config.Credentials.Retrieve(context.Background()); err == nil {
		t.Errorf("credentials from the process's environment were used")
	}
	if calls := fake.Calls(); len(calls) != 0 {
		t.Errorf("calls with instance metadata disabled in Env: %v", calls)
	}
}
