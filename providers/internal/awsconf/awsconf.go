// Package awsconf is the AWS configuration that every AWS provider shares:
// the settings a provider block takes (region, profile, endpoint, an assumed
// role), loading the configuration from them and from Env alone, and
// turning the SDK's errors into the providers' sentinels. A user who moves a
// block from one AWS service to another gets the same credentials, the same
// region and the same messages.
//
// The loading is the SDK's LoadDefaultConfig, for what the providers use,
// done here: the environment's variables, the shared config and
// credentials files, and the credential chain, with STS and the SSO
// portal called over awsjson. The SDK's config package would link the
// clients of STS, SSO, SSO OIDC and Sign-In, whose package init (endpoint
// rules, schemas) every start of secretrun paid for, AWS configured or
// not.
package awsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go/logging"

	"github.com/secretrun/secretrun/providers"
)

const (
	defaultSessionName = "secretrun"
	// imdsRegionTimeout bounds the wait for instance metadata, which
	// answers in milliseconds on EC2 and never elsewhere.
	imdsRegionTimeout = 2 * time.Second
)

// Settings are the keys of an AWS provider's block in the config.
type Settings struct {
	Region        string `yaml:"region"`
	Profile       string `yaml:"profile"`
	Endpoint      string `yaml:"endpoint"`
	AssumeRoleARN string `yaml:"assume_role_arn"`
	ExternalID    string `yaml:"external_id"`
	SessionName   string `yaml:"session_name"`
}

// Check rejects settings that cannot mean what they say, before any
// network is involved.
func (s Settings) Check() error {
	switch {
	case s.ExternalID != "" && s.AssumeRoleARN == "":
		return fmt.Errorf("`external_id` needs `assume_role_arn`")
	case s.SessionName != "" && s.AssumeRoleARN == "":
		return fmt.Errorf("`session_name` needs `assume_role_arn`")
	}
	if s.Endpoint != "" {
		if err := checkEndpoint(s.Endpoint); err != nil {
			return fmt.Errorf("endpoint: %w", err)
		}
	}
	return nil
}

func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL", s)
	}
	return nil
}

// Hooks let tests watch and shape a client's traffic.
type Hooks struct {
	HTTPClient *http.Client
}

// Request is what Load needs to know about the provider asking.
type Request struct {
	// Who names the provider instance in messages: `aws-ssm "prod"`.
	Who string
	// Settings are the provider's block.
	Settings Settings
	// Env is where every environment variable and the home directory
	// come from.
	Env providers.Env
	// EndpointVariable is the service's own endpoint override, such as
	// AWS_ENDPOINT_URL_SSM; it wins over AWS_ENDPOINT_URL.
	EndpointVariable string
	Hooks            Hooks
}

// Loaded is an SDK configuration and what it was built with.
type Loaded struct {
	Config aws.Config
	// Endpoint is the service endpoint to use instead of AWS's own; empty
	// for AWS's own.
	Endpoint string
}

// Where names the region, and the endpoint when it is not AWS's own, for
// messages.
func (l Loaded) Where() string {
	if l.Endpoint != "" {
		return l.Config.Region + " at " + l.Endpoint
	}
	return l.Config.Region
}

// Load builds the configuration the SDK's LoadDefaultConfig would, from
// Env alone, so that the choices that matter (region, profile, keys,
// endpoint) never come from anywhere a test cannot control: the
// environment's AWS variables, the shared config and credentials files
// and their profile, and the SDK's credential chain, in the SDK's order
// and with its results.
func Load(ctx context.Context, r Request) (Loaded, error) {
	getenv := r.Env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	set := r.Settings
	fail := func(err error) (Loaded, error) {
		return Loaded{}, fmt.Errorf("%s: load AWS configuration: %w", r.Who, err)
	}

	env, err := readEnvironment(getenv)
	if err != nil {
		return fail(err)
	}
	region := First(set.Region, getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"))
	profileName := First(set.Profile, getenv("AWS_PROFILE"), getenv("AWS_DEFAULT_PROFILE"))
	prof, err := loadProfile(sharedFile(r.Env, getenv, "AWS_CONFIG_FILE", "config"),
		sharedFile(r.Env, getenv, "AWS_SHARED_CREDENTIALS_FILE", "credentials"), profileName, profileName != "")
	if err != nil {
		return fail(err)
	}

	// Keys in the environment win unless a profile was chosen, as in the
	// SDK's own chain.
	static := profileName == "" && getenv("AWS_ACCESS_KEY_ID") != "" && getenv("AWS_SECRET_ACCESS_KEY") != ""
	// With both keys and a region given, nothing needs instance metadata;
	// turning it off keeps start-up from waiting on 169.254.169.254 where
	// it does not answer (a laptop, a CI runner).
	env.IMDSDisabled = env.IMDSDisabled || static && region != ""
	l := &loader{env: env, prof: prof, named: profileName != "", src: endpointSources(env, prof), home: r.Env.HomeDir, stderr: r.Env.Stderr}
	if r.Env.Environ != nil {
		l.environ = r.Env.Environ()
	} else {
		l.environ = os.Environ()
	}
	if l.stderr == nil {
		l.stderr = os.Stderr
	}

	cfg := aws.Config{
		Region:        First(region, prof.Region),
		ConfigSources: []any{l.src},
		// The SDK's own warnings (a fallback to IMDSv1) go to
		// secretrun's stderr in secretrun's format, not the SDK's.
		Logger: logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
			if c == logging.Warn {
				r.Env.Warn("%s: %s", r.Who, fmt.Sprintf(format, v...))
			}
		}),
		RetryMaxAttempts: env.RetryMaxAttempts,
		RetryMode:        First(env.RetryMode, prof.RetryMode),
		DefaultsMode:     First(env.DefaultsMode, prof.DefaultsMode, aws.DefaultsModeLegacy),
	}
	if r.Hooks.HTTPClient != nil {
		cfg.HTTPClient = r.Hooks.HTTPClient
	}
	if cfg.HTTPClient, err = withCABundle(cfg.HTTPClient, getenv("AWS_CA_BUNDLE"), prof); err != nil {
		if getenv("AWS_CA_BUNDLE") != "" {
			return Loaded{}, fmt.Errorf("%s: AWS_CA_BUNDLE: %w", r.Who, err)
		}
		return fail(err)
	}
	if cfg.RetryMaxAttempts == 0 {
		cfg.RetryMaxAttempts = prof.RetryMaxAttempts
	}
	if cfg.DefaultsMode == aws.DefaultsModeAuto {
		// The SDK tells the mode's environment apart by the instance's
		// region, asked here as it does, and by AWS_EXECUTION_ENV.
		got, err := l.imds(cfg).GetRegion(ctx, &imds.GetRegionInput{})
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		cfg.RuntimeEnvironment = aws.RuntimeEnvironment{
			EnvironmentIdentifier: aws.ExecutionEnvironmentID(getenv("AWS_EXECUTION_ENV")),
			Region:                First(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION")),
		}
		if err == nil {
			cfg.RuntimeEnvironment.EC2InstanceMetadataRegion = got.Region
		}
	}

	if static {
		cfg.Credentials = cached(credentials.NewStaticCredentialsProvider(
			getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN")))
	} else if cfg.Credentials, err = l.chain(cfg); err != nil {
		return fail(err)
	}
	// Only now, as in the SDK, whose credential chain is made before
	// these are resolved.
	if base := l.baseEndpoint(); base != "" {
		cfg.BaseEndpoint = aws.String(base)
	}
	if skew := First(env.DisableClockSkewCorrection, prof.DisableClockSkewCorrection); skew != nil {
		cfg.DisableClockSkewCorrection = *skew
	}

	if cfg.Region == "" {
		// Neither settings, environment nor profile name a region: on an
		// EC2 instance, its own region is meant. Ask briefly, and say what
		// to set when there is no answer.
		imdsCtx, cancel := context.WithTimeout(ctx, imdsRegionTimeout)
		got, err := l.imds(cfg).GetRegion(imdsCtx, &imds.GetRegionInput{})
		cancel()
		if err != nil {
			return Loaded{}, fmt.Errorf("%s: no region: set `region:` in the provider, AWS_REGION, or a region in the AWS profile (instance metadata gave none)", r.Who)
		}
		cfg.Region = got.Region
	}

	if !static && profileName == "" && env.WebIdentityTokenFile != "" && env.RoleARN != "" {
		// CI's OIDC path: the role of AWS_ROLE_ARN, in a session named
		// secretrun unless AWS_ROLE_SESSION_NAME names it.
		cfg.Credentials = aws.NewCredentialsCache(&webIdentity{
			sts:         l.sts(cfg, aws.ToString(cfg.BaseEndpoint)),
			roleARN:     env.RoleARN,
			tokenFile:   env.WebIdentityTokenFile,
			sessionName: First(env.RoleSessionName, defaultSessionName),
			of:          "AWS_WEB_IDENTITY_TOKEN_FILE",
		})
	}
	if set.AssumeRoleARN != "" {
		cfg.Credentials = aws.NewCredentialsCache(&assumeRole{
			sts:         l.sts(cfg, aws.ToString(cfg.BaseEndpoint)),
			roleARN:     set.AssumeRoleARN,
			sessionName: First(set.SessionName, defaultSessionName),
			externalID:  set.ExternalID,
			of:          "assume_role_arn",
		})
	}
	cfg.Credentials = markedCredentials{cfg.Credentials}
	var endpoint string
	if r.EndpointVariable != "" {
		endpoint = First(set.Endpoint, getenv(r.EndpointVariable), getenv("AWS_ENDPOINT_URL"))
	} else {
		endpoint = First(set.Endpoint, getenv("AWS_ENDPOINT_URL"))
	}
	return Loaded{Config: cfg, Endpoint: endpoint}, nil
}

// withCABundle is client with the certificates of bundle (AWS_CA_BUNDLE),
// else of the profile's ca_bundle, as the only roots it trusts, as in
// the SDK.
func withCABundle(client aws.HTTPClient, bundle string, prof *profile) (aws.HTTPClient, error) {
	inProfile := bundle == ""
	bundle = First(bundle, prof.CABundle)
	if bundle == "" {
		return client, nil
	}
	what := func(err error) error {
		if inProfile {
			return fmt.Errorf("%s: ca_bundle: %w", prof, err)
		}
		return err
	}
	pem, err := os.ReadFile(bundle)
	if err != nil {
		return nil, what(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, what(fmt.Errorf("%s holds no PEM certificate", bundle))
	}
	if client == nil {
		client = awshttp.NewBuildableClient()
	}
	buildable, ok := client.(*awshttp.BuildableClient)
	if !ok {
		return nil, what(fmt.Errorf("the certificates of %s cannot be added to an HTTP client of type %T", bundle, client))
	}
	return buildable.WithTransportOptions(func(t *http.Transport) {
		if t.TLSClientConfig == nil {
			t.TLSClientConfig = &tls.Config{}
		}
		t.TLSClientConfig.RootCAs = roots
	}), nil
}

// sharedFile names the shared config or credentials file from Env: its
// variable, else the file in ~/.aws; "" when there is no home directory.
func sharedFile(env providers.Env, getenv func(string) string, variable, base string) string {
	if f := getenv(variable); f != "" {
		return f
	}
	if env.HomeDir != "" {
		return filepath.Join(env.HomeDir, ".aws", base)
	}
	return ""
}

// markedCredentials tags a failure to obtain credentials, which the SDK
// otherwise reports only as text, so that it maps to ErrAuth.
type markedCredentials struct {
	aws.CredentialsProvider
}

func (m markedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err}
	}
	return c, nil
}

type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "no usable AWS credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// First returns the first value that is not the zero value.
func First[T comparable](values ...T) T {
	var zero T
	for _, v := range values {
		if v != zero {
			return v
		}
	}
	return zero
}
