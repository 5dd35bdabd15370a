package awsconf

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/awsjson"
)

// oracleCase is a machine's AWS configuration: its files, its
// environment, a provider's settings. $HOME in any of them is the home
// directory of the case.
type oracleCase struct {
	name        string
	config      string
	credentials string
	// files are more files under the home directory, by path: web
	// identity tokens, SSO token caches, scripts (made executable).
	files    map[string]string
	vars     map[string]string
	settings Settings
	// instanceMetadata makes EC2 instance metadata answer, with the
	// region eu-central-1 and a role's credentials.
	instanceMetadata bool
	// wantErr, when set, is what the loading's or the credentials'
	// error must say, the SDK's having failed too.
	wantErr []string
}

// outcome is what a configuration gives a provider: what it fails with,
// its region, where the provider's calls go and how they are retried,
// the credentials and every call made to get them.
type outcome struct {
	Loaded      bool
	Region      string
	Endpoint    string
	MaxAttempts int
	RetryMode   aws.RetryMode
	Defaults    aws.DefaultsMode
	NoSkew      bool
	Credentials string
	Calls       []string
}

func (o outcome) String() string {
	b, _ := json.MarshalIndent(o, "", "  ")
	return string(b)
}

// ssmLike is a service with the rules of most: its endpoints show the
// region, FIPS and dual-stack settings, and the configured endpoints.
var ssmLike = awsjson.Service{ID: "SSM", SigningName: "ssm", GovCloudFIPSIsRegular: true}

// setUp writes the case's files into home, fresh, and returns its
// environment.
func (c oracleCase) setUp(t *testing.T, home string) map[string]string {
	t.Helper()
	expand := func(s string) string { return strings.ReplaceAll(s, "$HOME", home) }
	write := func(rel, content string, mode os.FileMode) {
		path := filepath.Join(home, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(expand(content)), mode); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.RemoveAll(filepath.Join(home, ".aws"))
	if c.config != "" {
		write(".aws/config", c.config, 0o600)
	}
	if c.credentials != "" {
		write(".aws/credentials", c.credentials, 0o600)
	}
	for rel, content := range c.files {
		mode := os.FileMode(0o600)
		if strings.HasSuffix(rel, ".sh") {
			mode = 0o700
		}
		write(rel, content, mode)
	}
	vars := map[string]string{}
	for k, v := range c.vars {
		vars[k] = expand(v)
	}
	return vars
}

// isolate makes the process's environment what vars say, and nothing
// else of AWS, for the SDK, which reads it.
func isolate(t *testing.T, vars map[string]string, home string) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("HOME", home)
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

func run(t *testing.T, c oracleCase, load func(context.Context, Request) (Loaded, error)) (outcome, error) {
	t.Helper()
	home := t.TempDir()
	vars := c.setUp(t, home)
	isolate(t, vars, home)
	fake := &fakeAWS{instanceMetadata: c.instanceMetadata, instanceRegion: "eu-central-1"}
	var stderr bytes.Buffer
	req := Request{
		Who:              `aws-ssm "t"`,
		Settings:         c.settings,
		Env:              providers.Env{Getenv: func(k string) string { return vars[k] }, HomeDir: home, Stderr: &stderr},
		EndpointVariable: "AWS_ENDPOINT_URL_SSM",
		Hooks:            Hooks{HTTPClient: fake.client()},
	}
	ctx := context.Background()
	var o outcome
	l, err := load(ctx, req)
	if err != nil {
		o.Calls = fake.Calls()
		return o, err
	}
	o.Loaded = true
	o.Region = l.Config.Region
	if u, signing, err := awsjson.ResolveEndpoint(l.Config, l.Endpoint, ssmLike); err != nil {
		o.Endpoint = "error"
	} else {
		o.Endpoint = u + " signed for " + signing
	}
	o.MaxAttempts, o.RetryMode, o.Defaults, o.NoSkew = l.Config.RetryMaxAttempts, l.Config.RetryMode, l.Config.DefaultsMode, l.Config.DisableClockSkewCorrection
	// Twice: the second must come from the cache, with no call.
	for range 2 {
		creds, cerr := l.Config.Credentials.Retrieve(ctx)
		if cerr != nil {
			o.Credentials, err = "error", cerr
			break
		}
		o.Credentials = creds.AccessKeyID + " " + creds.SecretAccessKey + " " + creds.SessionToken
	}
	o.Calls = fake.Calls()
	return o, err
}

// compare runs a case with the SDK's loading and with Load, and wants the
// same outcome; an error must be there in both, and Load's must say
// what the case wants.
func compare(t *testing.T, c oracleCase) {
	t.Helper()
	want, sdkErr := run(t, c, sdkLoad)
	got, err := run(t, c, Load)
	if got.String() != want.String() {
		t.Errorf("Load gave\n%s\nthe SDK gave\n%s\n(Load: %v; the SDK: %v)", got, want, err, sdkErr)
	}
	if (err == nil) != (sdkErr == nil) {
		t.Errorf("Load's error: %v; the SDK's: %v", err, sdkErr)
	}
	if len(c.wantErr) > 0 && err == nil {
		t.Errorf("no error, want one saying %q", c.wantErr)
	}
	if err != nil {
		for _, w := range c.wantErr {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		if len(c.wantErr) == 0 {
			t.Logf("both failed; Load: %v", err)
		}
	}
}

const keys = "aws_access_key_id = AKIDPROFILE\naws_secret_access_key = secret-profile\n"

func envKeys(more ...string) map[string]string {
	vars := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "secret-env"}
	for i := 0; i+1 < len(more); i += 2 {
		vars[more[i]] = more[i+1]
	}
	return vars
}

func TestRegionEndpointsAndRetriesAsTheSDK(t *testing.T) {
	for _, c := range []oracleCase{
		{name: "EnvKeysAndRegion", vars: envKeys("AWS_REGION", "eu-west-1", "AWS_SESSION_TOKEN", "tok")},
		{name: "DefaultRegionVariable", vars: envKeys("AWS_DEFAULT_REGION", "ap-south-1")},
		{name: "RegionOrder", settings: Settings{Region: "us-west-2"}, vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\nregion = sa-east-1\n"},
		{name: "RegionFromDefaultProfile", vars: envKeys(), config: "[default]\nregion = sa-east-1\n"},
		{name: "NoRegionNoInstance", vars: envKeys(), wantErr: []string{`aws-ssm "t"`, "no region", "AWS_REGION"}},
		{name: "RegionFromInstance", vars: envKeys(), instanceMetadata: true},
		{name: "FIPSFromEnv", vars: envKeys("AWS_REGION", "us-east-1", "AWS_USE_FIPS_ENDPOINT", "true")},
		{name: "DualStackFromProfile", vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\nuse_dualstack_endpoint = true\n"},
		{name: "EnvFIPSOffOverProfile", vars: envKeys("AWS_REGION", "us-east-1", "AWS_USE_FIPS_ENDPOINT", "false"), config: "[default]\nuse_fips_endpoint = true\n"},
		{name: "BadFIPS", vars: envKeys("AWS_REGION", "us-east-1", "AWS_USE_FIPS_ENDPOINT", "yes"), wantErr: []string{"AWS_USE_FIPS_ENDPOINT", `"yes"`}},
		{name: "EndpointURLInProfile", vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\nendpoint_url = http://127.0.0.1:4566\n"},
		{name: "ServicesSection", vars: envKeys("AWS_REGION", "eu-west-1"),
			config: "[default]\nendpoint_url = http://127.0.0.1:1\nservices = local\n[services local]\nssm =\n  endpoint_url = http://127.0.0.1:4566/ssm\nsts =\n  endpoint_url = http://127.0.0.1:4566/sts\n"},
		{name: "IgnoreConfiguredInProfile", vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\nignore_configured_endpoint_urls = true\nendpoint_url = http://127.0.0.1:4566\n"},
		{name: "IgnoreConfiguredInEnv", vars: envKeys("AWS_REGION", "eu-west-1", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"), config: "[default]\nendpoint_url = http://127.0.0.1:4566\n"},
		{name: "EnvEndpoints", vars: envKeys("AWS_REGION", "eu-west-1", "AWS_ENDPOINT_URL", "http://127.0.0.1:1", "AWS_ENDPOINT_URL_SSM", "http://127.0.0.1:2")},
		{name: "RetriesFromProfile", vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\nmax_attempts = 7\nretry_mode = adaptive\n"},
		{name: "RetriesFromEnvFirst", vars: envKeys("AWS_REGION", "eu-west-1", "AWS_MAX_ATTEMPTS", "2", "AWS_RETRY_MODE", "standard"), config: "[default]\nmax_attempts = 7\nretry_mode = adaptive\n"},
		{name: "BadMaxAttemptsInEnv", vars: envKeys("AWS_REGION", "eu-west-1", "AWS_MAX_ATTEMPTS", "many"), wantErr: []string{"AWS_MAX_ATTEMPTS", "many"}},
		{name: "BadMaxAttemptsInDefaultProfile", vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\nmax_attempts = many\n", wantErr: []string{"profile default", "max_attempts", "many"}},
		{name: "BadRetryMode", vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\nretry_mode = eager\n", wantErr: []string{"retry_mode", "eager"}},
		{name: "DefaultsMode", vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\ndefaults_mode = standard\n"},
		{name: "DefaultsModeAuto", vars: envKeys("AWS_REGION", "eu-west-1", "AWS_DEFAULTS_MODE", "auto")},
		{name: "BadDefaultsMode", vars: envKeys("AWS_REGION", "eu-west-1", "AWS_DEFAULTS_MODE", "fast"), wantErr: []string{"AWS_DEFAULTS_MODE"}},
		{name: "NoClockSkewCorrection", vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\ndisable_clock_skew_correction = true\n"},
		{name: "ClockSkewSpelling", vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\ndisable_clock_skew_correction = TRUE\n", wantErr: []string{"disable_clock_skew_correction"}},
		{name: "UnusedSettingChecked", vars: envKeys("AWS_REGION", "eu-west-1", "AWS_ACCOUNT_ID_ENDPOINT_MODE", "sometimes"), wantErr: []string{"AWS_ACCOUNT_ID_ENDPOINT_MODE"}},
		{name: "UnusedProfileSettingChecked", vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\nrequest_checksum_calculation = always\n", wantErr: []string{"request_checksum_calculation"}},
		{name: "CABundleMissing", vars: envKeys("AWS_REGION", "eu-west-1"), config: "[default]\nca_bundle = $HOME/none.pem\n", wantErr: []string{"ca_bundle", "none.pem"}},
		{name: "InstanceMetadataEndpoint", vars: envKeys("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")},
	} {
		t.Run(c.name, func(t *testing.T) { compare(t, c) })
	}
}

func TestSharedFilesAsTheSDK(t *testing.T) {
	region := map[string]string{"AWS_REGION": "eu-west-1"}
	for _, c := range []oracleCase{
		{name: "ProfileFromSettings", settings: Settings{Profile: "dev"}, config: "[profile dev]\nregion = us-east-2\n" + keys},
		{name: "ProfileFromEnv", vars: map[string]string{"AWS_PROFILE": "dev"}, config: "[profile dev]\nregion = us-east-2\n" + keys},
		{name: "ProfileWinsOverEnvKeys", vars: envKeys("AWS_PROFILE", "dev", "AWS_REGION", "eu-west-1"), config: "[profile dev]\n" + keys},
		{name: "EnvKeysWinOverDefaultProfile", vars: envKeys("AWS_REGION", "eu-west-1"), credentials: "[default]\n" + keys},
		{name: "OtherKeyNames", vars: map[string]string{"AWS_ACCESS_KEY": "AKIDOLD", "AWS_SECRET_KEY": "secret-old", "AWS_REGION": "eu-west-1"}},
		{name: "DefaultProfileKeys", vars: region, credentials: "[default]\n" + keys},
		{name: "MissingProfile", vars: map[string]string{"AWS_PROFILE": "nope", "AWS_REGION": "eu-west-1"}, config: "[default]\n" + keys,
			wantErr: []string{`no profile "nope"`, ".aws/config", ".aws/credentials"}},
		{name: "BareSectionIgnoredInConfig", settings: Settings{Profile: "dev"}, vars: region, config: "[dev]\n" + keys, wantErr: []string{`"dev"`}},
		{name: "ProfileSectionWinsOverBare", settings: Settings{Profile: "dev"}, vars: region, config: "[dev]\nregion = us-east-2\n[profile dev]\nregion = ca-central-1\n" + keys},
		{name: "CredentialsFileWins", settings: Settings{Profile: "dev"}, vars: region, config: "[profile dev]\n" + keys,
			credentials: "[dev]\naws_access_key_id = AKIDCREDS\naws_secret_access_key = secret-creds\naws_session_token = tok-creds\n"},
		{name: "ProfilePrefixIgnoredInCredentials", settings: Settings{Profile: "dev"}, vars: region, credentials: "[profile dev]\n" + keys, wantErr: []string{`"dev"`}},
		{name: "RegionFromCredentialsFile", settings: Settings{Profile: "dev"}, config: "[profile dev]\nregion = us-east-2\n", credentials: "[dev]\nregion = eu-north-1\n" + keys},
		{name: "PartialKeys", settings: Settings{Profile: "dev"}, vars: region, credentials: "[dev]\naws_access_key_id = AKID\n", wantErr: []string{"profile dev", "aws_secret_access_key"}},
		{name: "PartialKeysRepaired", settings: Settings{Profile: "dev"}, vars: region, config: "[profile dev]\naws_access_key_id = AKID\n", credentials: "[dev]\n" + keys},
		{name: "OtherFiles", settings: Settings{Profile: "dev"},
			vars:  map[string]string{"AWS_CONFIG_FILE": "$HOME/conf/aws.ini", "AWS_SHARED_CREDENTIALS_FILE": "$HOME/conf/keys.ini"},
			files: map[string]string{"conf/aws.ini": "[profile dev]\nregion = us-east-2\n", "conf/keys.ini": "[dev]\n" + keys}},
		{name: "Syntax", settings: Settings{Profile: "dev"}, config: "# comment\n; another\n[ profile   dev ] ; trailing\nREGION: 'us-east-2'\n" +
			"aws_access_key_id = \"AKIDQUOTED\" # comment\naws_secret_access_key=secret#kept\n\tsub = ignored\nmax_attempts = 0x5\n"},
		{name: "Continuation", settings: Settings{Profile: "dev"}, vars: region, config: "[profile dev]\n" + keys + "role_session_name = a\n  b\n"},
	} {
		t.Run(c.name, func(t *testing.T) { compare(t, c) })
	}
}

func TestCredentialChainAsTheSDK(t *testing.T) {
	region := map[string]string{"AWS_REGION": "eu-west-1"}
	withRegion := func(more ...string) map[string]string {
		vars := map[string]string{"AWS_REGION": "eu-west-1"}
		for i := 0; i+1 < len(more); i += 2 {
			vars[more[i]] = more[i+1]
		}
		return vars
	}
	role := "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = base\n"
	base := "[profile base]\n" + keys
	container := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "container-token" {
			http.Error(w, `{"code":"denied","message":"no token"}`, http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, `{"AccessKeyId":"ASIACONTAINER","SecretAccessKey":"secret-container","Token":"token-container","Expiration":%q}`,
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	}))
	t.Cleanup(container.Close)
	valid := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	expired := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	// The caches `aws sso login` writes, named by the SHA-1 of the
	// session name or the start URL.
	sessionCache := ".aws/sso/cache/" + sha1Hex("corp") + ".json"
	legacyCache := ".aws/sso/cache/" + sha1Hex("https://corp.awsapps.com/start") + ".json"
	ssoSession := "[profile dev]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Reader\n" +
		"[sso-session corp]\nsso_region = eu-central-1\nsso_start_url = https://corp.awsapps.com/start\n"
	legacy := "[profile dev]\nsso_region = eu-central-1\nsso_start_url = https://corp.awsapps.com/start\nsso_account_id = 111122223333\nsso_role_name = Reader\n"

	for _, c := range []oracleCase{
		{name: "SourceProfile", settings: Settings{Profile: "dev"}, vars: region, config: role + base},
		{name: "SourceProfileWithEndpointURL", settings: Settings{Profile: "dev"}, vars: withRegion("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"), config: role + base},
		{name: "SourceProfileWithSTSEndpoint", settings: Settings{Profile: "dev"}, vars: withRegion("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4566/sts"), config: role + base},
		{name: "SourceProfileWithBothEndpoints", settings: Settings{Profile: "dev"},
			vars: withRegion("AWS_ENDPOINT_URL", "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4566/sts"), config: role + base},
		{name: "SourceProfileWithServicesSection", settings: Settings{Profile: "dev"}, vars: region,
			config: role + "services = local\nendpoint_url = http://127.0.0.1:1\n[services local]\nsts =\n  endpoint_url = http://127.0.0.1:4566/sts\n" + base},
		{name: "RoleOptions", settings: Settings{Profile: "dev"}, vars: region,
			config: role + "external_id = ext-1\nrole_session_name = me\nduration_seconds = 3600\n" + base},
		{name: "ShortDurationIgnored", settings: Settings{Profile: "dev"}, vars: region, config: role + "duration_seconds = 600\n" + base},
		{name: "RoleChain", settings: Settings{Profile: "dev"}, vars: region,
			config: role + "[profile base]\nrole_arn = arn:aws:iam::123456789012:role/base\nsource_profile = root\n[profile root]\n" + keys},
		{name: "SelfSourceProfile", settings: Settings{Profile: "dev"}, vars: region,
			config: "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\nsource_profile = dev\n" + keys},
		{name: "RoleInFIPSGovCloud", settings: Settings{Profile: "dev"}, vars: withRegion("AWS_REGION", "us-gov-west-1", "AWS_USE_FIPS_ENDPOINT", "true"), config: role + base},
		{name: "RoleAtGlobalEndpoint", settings: Settings{Profile: "dev"}, vars: withRegion("AWS_REGION", "aws-global"), config: role + base},
		{name: "RoleDenied", settings: Settings{Profile: "dev"}, vars: region,
			config:  "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/denied\nsource_profile = base\n" + base,
			wantErr: []string{"no usable AWS credentials", "arn:aws:iam::123456789012:role/denied", "AccessDenied", "profile dev"}},
		{name: "MissingSourceProfile", settings: Settings{Profile: "dev"}, vars: region, config: role, wantErr: []string{"source_profile base"}},
		{name: "SourceProfileWithoutCredentials", settings: Settings{Profile: "dev"}, vars: region, config: role + "[profile base]\nregion = eu-west-1\n", wantErr: []string{"base", "no credentials"}},
		{name: "RoleWithoutARN", settings: Settings{Profile: "dev"}, vars: region, config: "[profile dev]\nsource_profile = base\n" + base, wantErr: []string{"role_arn"}},
		{name: "TwoKinds", settings: Settings{Profile: "dev"}, vars: region,
			config: role + "credential_process = true\n" + base, wantErr: []string{"only one of"}},
		{name: "MFA", settings: Settings{Profile: "dev"}, vars: region, config: role + "mfa_serial = arn:aws:iam::123456789012:mfa/me\n" + base, wantErr: []string{"mfa_serial"}},
		{name: "CredentialSourceEnvironment", settings: Settings{Profile: "dev"}, vars: envKeys("AWS_REGION", "eu-west-1"),
			config: "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\ncredential_source = Environment\n"},
		{name: "CredentialSourceEnvironmentEmpty", settings: Settings{Profile: "dev"}, vars: region,
			config: "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\ncredential_source = Environment\n"},
		{name: "CredentialSourceInstance", settings: Settings{Profile: "dev"}, vars: region, instanceMetadata: true,
			config: "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\ncredential_source = Ec2InstanceMetadata\n"},
		{name: "CredentialSourceContainer", settings: Settings{Profile: "dev"},
			vars:   withRegion("AWS_CONTAINER_CREDENTIALS_FULL_URI", container.URL+"/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "container-token"),
			config: "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\ncredential_source = EcsContainer\n"},
		{name: "CredentialSourceContainerMissing", settings: Settings{Profile: "dev"}, vars: region,
			config: "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\ncredential_source = EcsContainer\n", wantErr: []string{"AWS_CONTAINER_CREDENTIALS_FULL_URI"}},
		{name: "CredentialSourceUnknown", settings: Settings{Profile: "dev"}, vars: region,
			config: "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/dev\ncredential_source = Laptop\n", wantErr: []string{"Laptop"}},
		{name: "ContainerFullURI", vars: withRegion("AWS_CONTAINER_CREDENTIALS_FULL_URI", container.URL+"/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "$HOME/token"),
			files: map[string]string{"token": "container-token"}},
		{name: "ContainerFullURINotLocal", vars: withRegion("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.1/creds"), wantErr: []string{"AWS_CONTAINER_CREDENTIALS_FULL_URI"}},
		{name: "InstanceRole", vars: region, instanceMetadata: true},
		{name: "InstanceRoleAndRegion", instanceMetadata: true},
		{name: "NoCredentialsAnywhere", vars: region, wantErr: []string{"no usable AWS credentials"}},
		{name: "InstanceMetadataDisabled", vars: withRegion("AWS_EC2_METADATA_DISABLED", "true"), instanceMetadata: true, wantErr: []string{"no usable AWS credentials"}},
		{name: "WebIdentityInProfile", settings: Settings{Profile: "dev"}, vars: region, files: map[string]string{"web-token": "jwt-1"},
			config: "[profile dev]\nrole_arn = arn:aws:iam::123456789012:role/ci\nweb_identity_token_file = $HOME/web-token\nrole_session_name = ci\n"},
		{name: "WebIdentityFromEnv", vars: withRegion("AWS_WEB_IDENTITY_TOKEN_FILE", "$HOME/web-token", "AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ci"),
			files: map[string]string{"web-token": "jwt-2"}},
		{name: "WebIdentityFromEnvNamed", vars: withRegion("AWS_WEB_IDENTITY_TOKEN_FILE", "$HOME/web-token", "AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ci",
			"AWS_ROLE_SESSION_NAME", "run-7", "AWS_ENDPOINT_URL", "http://127.0.0.1:4566"), files: map[string]string{"web-token": "jwt-2"}},
		{name: "WebIdentityWithoutRole", vars: withRegion("AWS_WEB_IDENTITY_TOKEN_FILE", "$HOME/web-token"), files: map[string]string{"web-token": "jwt-2"}, wantErr: []string{"AWS_ROLE_ARN"}},
		{name: "WebIdentityTokenMissing", vars: withRegion("AWS_WEB_IDENTITY_TOKEN_FILE", "$HOME/none", "AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ci"), wantErr: []string{"none"}},
		{name: "WebIdentityBesideEnvKeys", vars: envKeys("AWS_REGION", "eu-west-1", "AWS_WEB_IDENTITY_TOKEN_FILE", "$HOME/web-token", "AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ci"),
			files: map[string]string{"web-token": "jwt-2"}},
		{name: "SettingsRole", settings: Settings{AssumeRoleARN: "arn:aws:iam::123456789012:role/reader", ExternalID: "ext", SessionName: "deploy"},
			vars: envKeys("AWS_REGION", "eu-west-1", "AWS_ENDPOINT_URL", "http://127.0.0.1:4566")},
		{name: "SettingsRoleDefaultSession", settings: Settings{AssumeRoleARN: "arn:aws:iam::123456789012:role/reader"}, vars: envKeys("AWS_REGION", "eu-west-1")},
		{name: "SettingsRoleOverProfileRole", settings: Settings{Profile: "dev", AssumeRoleARN: "arn:aws:iam::123456789012:role/reader"}, vars: region, config: role + base},
		{name: "SettingsRoleAtProfileEndpoint", settings: Settings{AssumeRoleARN: "arn:aws:iam::123456789012:role/reader"}, vars: envKeys("AWS_REGION", "eu-west-1"),
			config: "[default]\nendpoint_url = http://127.0.0.1:4566\n"},
		{name: "Process", settings: Settings{Profile: "dev"}, vars: region, files: map[string]string{"creds.sh": processScript},
			config: "[profile dev]\ncredential_process = $HOME/creds.sh process-arg\n"},
		{name: "ProcessFails", settings: Settings{Profile: "dev"}, vars: region, config: "[profile dev]\ncredential_process = false\n", wantErr: []string{"credential_process", "exit status 1"}},
		{name: "ProcessThenRole", settings: Settings{Profile: "dev"}, vars: region, files: map[string]string{"creds.sh": processScript},
			config: role + "[profile base]\ncredential_process = $HOME/creds.sh\n"},
		{name: "SSOSession", settings: Settings{Profile: "dev"}, vars: region, config: ssoSession,
			files: map[string]string{sessionCache: `{"accessToken":"sso-token","expiresAt":"` + valid + `","region":"eu-central-1"}`}},
		{name: "SSOSessionRefreshed", settings: Settings{Profile: "dev"}, vars: region, config: ssoSession,
			files: map[string]string{sessionCache: `{"accessToken":"old","expiresAt":"` + expired + `","refreshToken":"r-1","clientId":"c-1","clientSecret":"cs-1","registrationExpiresAt":"2099-01-01T00:00:00Z"}`}},
		{name: "SSOSessionExpired", settings: Settings{Profile: "dev"}, vars: region, config: ssoSession,
			files:   map[string]string{sessionCache: `{"accessToken":"old","expiresAt":"` + expired + `"}`},
			wantErr: []string{"aws sso login --profile dev", "expired"}},
		{name: "SSOSessionNoToken", settings: Settings{Profile: "dev"}, vars: region, config: ssoSession, wantErr: []string{"aws sso login --profile dev"}},
		{name: "SSOSessionRevoked", settings: Settings{Profile: "dev"}, vars: region, config: ssoSession,
			files:   map[string]string{sessionCache: `{"accessToken":"revoked","expiresAt":"` + valid + `"}`},
			wantErr: []string{"UnauthorizedException", "aws sso login --profile dev"}},
		{name: "SSOSessionAtServicesEndpoint", settings: Settings{Profile: "dev"}, vars: region,
			config: ssoSession + "[profile dev]\nservices = local\n[services local]\nsso =\n  endpoint_url = http://127.0.0.1:4566\n",
			files:  map[string]string{sessionCache: `{"accessToken":"sso-token","expiresAt":"` + valid + `"}`}},
		{name: "SSOSessionSectionMissing", settings: Settings{Profile: "dev"}, vars: region,
			config: "[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = R\n", wantErr: []string{"sso-session corp"}},
		{name: "SSOSessionIncomplete", settings: Settings{Profile: "dev"}, vars: region,
			config: "[profile dev]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = R\n[sso-session corp]\nsso_region = eu-central-1\n", wantErr: []string{"sso_start_url"}},
		{name: "SSOLegacy", settings: Settings{Profile: "dev"}, vars: region, config: legacy,
			files: map[string]string{legacyCache: `{"accessToken":"legacy-token","expiresAt":"` + valid + `"}`}},
		{name: "SSOLegacyExpired", settings: Settings{Profile: "dev"}, vars: region, config: legacy,
			files:   map[string]string{legacyCache: `{"accessToken":"legacy-token","expiresAt":"` + expired + `","refreshToken":"r","clientId":"c","clientSecret":"s"}`},
			wantErr: []string{"aws sso login --profile dev"}},
		{name: "SSOLegacyIncomplete", settings: Settings{Profile: "dev"}, vars: region,
			config: "[profile dev]\nsso_start_url = https://corp.awsapps.com/start\n", wantErr: []string{"sso_region", "sso_account_id", "sso_role_name"}},
		{name: "SSOThenRole", settings: Settings{Profile: "dev"}, vars: region,
			config: role + "[profile base]\nsso_session = corp\nsso_account_id = 111122223333\nsso_role_name = Reader\n[sso-session corp]\nsso_region = eu-central-1\nsso_start_url = https://corp.awsapps.com/start\n",
			files:  map[string]string{sessionCache: `{"accessToken":"sso-token","expiresAt":"` + valid + `"}`}},
		{name: "LoginSession", settings: Settings{Profile: "dev"}, vars: region,
			config: "[profile dev]\nlogin_session = arn:aws:iam::123456789012:user/me\n",
			files: map[string]string{".aws/login/cache/" + sha256Hex("arn:aws:iam::123456789012:user/me") + ".json": `{"accessToken":{"accessKeyId":"ASIALOGIN","secretAccessKey":"secret-login",` +
				`"sessionToken":"token-login","accountId":"123456789012","expiresAt":"` + valid + `"},"tokenType":"aws_sigv4","refreshToken":"r","clientId":"arn:aws:signin:::devtools/same-device","dpopKey":"k"}`}},
	} {
		t.Run(c.name, func(t *testing.T) { compare(t, c) })
	}
}

// processScript is a credential_process: it prints keys naming its
// arguments.
const processScript = `#!/bin/sh
printf '{"Version": 1, "AccessKeyId": "AKIDPROCESS%s", "SecretAccessKey": "secret-process", "SessionToken": "token-process"}' "$1"
`

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
