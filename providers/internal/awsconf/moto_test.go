package awsconf

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/internal/awsjson"
)

var moto mototest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	moto.Stop()
	os.Exit(code)
}

// loadAtMoto loads the profile dev of config with STS at srv, as a user
// with a local STS would have it: AWS_ENDPOINT_URL_STS.
func loadAtMoto(t *testing.T, srv *mototest.Server, config string, files map[string]string) Loaded {
	t.Helper()
	home := t.TempDir()
	files[".aws/config"] = config
	for rel, content := range files {
		path := filepath.Join(home, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(content, "$HOME", home)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]string{"AWS_REGION": mototest.Region, "AWS_ENDPOINT_URL_STS": srv.URL}
	l, err := Load(context.Background(), Request{
		Who:      `aws-ssm "t"`,
		Settings: Settings{Profile: "dev"},
		Env:      providers.Env{Getenv: func(k string) string { return vars[k] }, HomeDir: home},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// callerARN is who moto's STS takes the caller of l for.
func callerARN(t *testing.T, l Loaded, srv *mototest.Server) string {
	t.Helper()
	c, err := awsjson.NewCaller(l.Config, srv.URL, stsService)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Arn string }
	req := awsjson.Request{
		Method: http.MethodPost,
		Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		Body:   []byte(url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}}.Encode()),
	}
	err = c.Do(context.Background(), "GetCallerIdentity", req, func(resp *http.Response, body []byte) error {
		if resp.StatusCode != http.StatusOK {
			return queryError(body)
		}
		return decodeElement(body, "GetCallerIdentityResult", &out)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Arn
}

func TestRoleOfProfileAtMoto(t *testing.T) {
	srv := moto.Get(t)
	l := loadAtMoto(t, srv, "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n"+
		"role_session_name = laptop\nduration_seconds = 3600\nexternal_id = ext-1\n"+
		"[profile base]\naws_access_key_id = "+mototest.AccessKeyID+"\naws_secret_access_key = "+mototest.SecretAccessKey+"\n", map[string]string{})
	creds, err := l.Config.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID == mototest.AccessKeyID || creds.SessionToken == "" {
		t.Errorf("the source profile's keys were used, not the role's")
	}
	if d := time.Until(creds.Expires); d < 50*time.Minute || d > 70*time.Minute {
		t.Errorf("the role's credentials expire in %v, want about the hour duration_seconds asks for", d)
	}
	if got := callerARN(t, l, srv); !strings.Contains(got, "assumed-role/dev/laptop") {
		t.Errorf("moto takes the caller for %s, want the session laptop of role dev", got)
	}
}

func TestWebIdentityOfProfileAtMoto(t *testing.T) {
	srv := moto.Get(t)
	l := loadAtMoto(t, srv, "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/ci\nweb_identity_token_file = $HOME/token\nrole_session_name = pipeline\n",
		map[string]string{"token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjaSJ9."})
	creds, err := l.Config.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID == "" || creds.SessionToken == "" || !creds.CanExpire {
		t.Errorf("no session credentials from AssumeRoleWithWebIdentity")
	}
	if got := callerARN(t, l, srv); !strings.Contains(got, "assumed-role/ci/pipeline") {
		t.Errorf("moto takes the caller for %s, want the session pipeline of role ci", got)
	}
}

// TestRoleRefused: a refusal of STS reaches the provider as an
// authentication failure naming the role and the profile, with STS's code
// and message.
func TestRoleRefused(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".aws"), 0o700); err != nil {
		t.Fatal(err)
	}
	config := "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/denied\nsource_profile = base\n[profile base]\n" + keys
	if err := os.WriteFile(filepath.Join(home, ".aws", "config"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	fake := &fakeAWS{}
	l, err := Load(context.Background(), Request{
		Who:      `aws-ssm "t"`,
		Settings: Settings{Profile: "dev", Region: "eu-west-1"},
		Env:      providers.Env{Getenv: func(string) string { return "" }, HomeDir: home},
		Hooks:    Hooks{HTTPClient: fake.client()},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Config.Credentials.Retrieve(context.Background())
	got := Classify(context.Background(), err, nil)
	if !errors.Is(got, providers.ErrAuth) {
		t.Errorf("%v: want ErrAuth", got)
	}
	for _, want := range []string{"no usable AWS credentials", "arn:aws:iam::123456789012:role/denied", "profile dev", "AccessDenied", "not allowed to assume"} {
		if got == nil || !strings.Contains(got.Error(), want) {
			t.Errorf("%v does not say %q", got, want)
		}
	}
	if n := len(fake.Calls()); n != 1 {
		t.Errorf("%d calls to STS, want 1: AccessDenied is not retried", n)
	}
}
