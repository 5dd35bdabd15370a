// Package awsconf is the AWS configuration that every AWS provider shares:
// the settings a provider block takes (region, profile, endpoint, an assumed
// role), loading the SDK's configuration from them and from Env alone, and
// turning the SDK's errors into the providers' sentinels. A user who moves a
// block from one AWS service to another gets the same credentials, the same
// region and the same messages.
package awsconf

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"

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
	APIOptions []func(*middleware.Stack) error
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

// Load feeds the SDK's config loading with what Env says, so that the
// choices that matter (region, profile, keys, endpoint) never come from
// anywhere a test cannot control.
func Load(ctx context.Context, r Request) (Loaded, error) {
	getenv := r.Env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	set := r.Settings
	var opts []func(*config.LoadOptions) error

	region := First(set.Region, getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"))
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	profile := First(set.Profile, getenv("AWS_PROFILE"), getenv("AWS_DEFAULT_PROFILE"))
	if profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	if files := sharedFiles(r.Env, getenv, "AWS_CONFIG_FILE", "config"); files != nil {
		opts = append(opts, config.WithSharedConfigFiles(files))
	}
	if files := sharedFiles(r.Env, getenv, "AWS_SHARED_CREDENTIALS_FILE", "credentials"); files != nil {
		opts = append(opts, config.WithSharedCredentialsFiles(files))
	}

	// Keys in the environment win unless a profile was chosen, as in the
	// SDK's own chain.
	static := profile == "" && getenv("AWS_ACCESS_KEY_ID") != "" && getenv("AWS_SECRET_ACCESS_KEY") != ""
	if static {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN"))))
	}
	// With both keys and a region given, nothing needs instance metadata;
	// turning it off keeps start-up from waiting on 169.254.169.254 where
	// it does not answer (a laptop, a CI runner).
	if (static && region != "") || strings.EqualFold(getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	}
	if bundle := getenv("AWS_CA_BUNDLE"); bundle != "" {
		pem, err := os.ReadFile(bundle)
		if err != nil {
			return Loaded{}, fmt.Errorf("%s: AWS_CA_BUNDLE: %w", r.Who, err)
		}
		opts = append(opts, config.WithCustomCABundle(bytes.NewReader(pem)))
	}
	if u := getenv("AWS_ENDPOINT_URL"); u != "" {
		// As in the SDK: the global override applies to every service,
		// STS and SSO included.
		opts = append(opts, config.WithBaseEndpoint(u))
	}
	// The SDK's own warnings (a fallback to IMDSv1, a deprecated setting)
	// go to secretrun's stderr in secretrun's format, not the SDK's.
	opts = append(opts, config.WithLogger(logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		if c == logging.Warn {
			r.Env.Warn("%s: %s", r.Who, fmt.Sprintf(format, v...))
		}
	})))
	if r.Hooks.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(r.Hooks.HTTPClient))
	}
	if r.Hooks.APIOptions != nil {
		opts = append(opts, config.WithAPIOptions(r.Hooks.APIOptions))
	}

	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return Loaded{}, fmt.Errorf("%s: load AWS configuration: %w", r.Who, err)
	}
	if cfg.Region == "" {
		// Neither settings, environment nor profile name a region: on an
		// EC2 instance, its own region is meant. The SDK's lookup for this
		// fails the whole load when metadata is unreachable, so ask here,
		// briefly, and say what to set when there is no answer.
		imdsCtx, cancel := context.WithTimeout(ctx, imdsRegionTimeout)
		got, err := imds.NewFromConfig(cfg).GetRegion(imdsCtx, &imds.GetRegionInput{})
		cancel()
		if err != nil {
			return Loaded{}, fmt.Errorf("%s: no region: set `region:` in the provider, AWS_REGION, or a region in the AWS profile (instance metadata gave none)", r.Who)
		}
		cfg.Region = got.Region
	}

	tokenFile, roleARN := getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), getenv("AWS_ROLE_ARN")
	if !static && profile == "" && tokenFile != "" && roleARN != "" {
		// The SDK would read these from the process; taking them from Env
		// keeps CI's OIDC path under the same control as everything else.
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewWebIdentityRoleProvider(
			sts.NewFromConfig(cfg), roleARN, stscreds.IdentityTokenFile(tokenFile),
			func(o *stscreds.WebIdentityRoleOptions) {
				o.RoleSessionName = First(getenv("AWS_ROLE_SESSION_NAME"), defaultSessionName)
			}))
	}
	if set.AssumeRoleARN != "" {
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(
			sts.NewFromConfig(cfg), set.AssumeRoleARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = First(set.SessionName, defaultSessionName)
				if set.ExternalID != "" {
					o.ExternalID = aws.String(set.ExternalID)
				}
			}))
	}
	if cfg.Credentials != nil {
		cfg.Credentials = markedCredentials{cfg.Credentials}
	}
	var endpoint string
	if r.EndpointVariable != "" {
		endpoint = First(set.Endpoint, getenv(r.EndpointVariable), getenv("AWS_ENDPOINT_URL"))
	} else {
		endpoint = First(set.Endpoint, getenv("AWS_ENDPOINT_URL"))
	}
	return Loaded{Config: cfg, Endpoint: endpoint}, nil
}

// sharedFiles names the shared config or credentials file from Env, or nil
// to let the SDK use its default.
func sharedFiles(env providers.Env, getenv func(string) string, variable, base string) []string {
	if f := getenv(variable); f != "" {
		return []string{f}
	}
	if env.HomeDir != "" {
		return []string{filepath.Join(env.HomeDir, ".aws", base)}
	}
	return nil
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

// First returns the first non-empty value.
func First(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
