package awssm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"
)

const (
	defaultSessionName = "secretrun"
	// imdsRegionTimeout bounds the wait for instance metadata, which
	// answers in milliseconds on EC2 and never elsewhere.
	imdsRegionTimeout = 2 * time.Second
)

// client returns the instance's one SDK client, building it on first use.
// A failed build is not remembered, so a later call can succeed.
func (p *provider) client(ctx context.Context) (*conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		return p.conn, nil
	}
	cfg, endpoint, err := p.loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	sm := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	p.conn = &conn{sm: sm, region: cfg.Region, endpoint: endpoint}
	return p.conn, nil
}

// loadConfig feeds the SDK's config loading with what Env says, so that the
// choices that matter (region, profile, keys, endpoint) never come from
// anywhere a test cannot control.
func (p *provider) loadConfig(ctx context.Context) (aws.Config, string, error) {
	getenv := p.env.Getenv
	var opts []func(*config.LoadOptions) error

	region := first(p.set.Region, getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"))
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	profile := first(p.set.Profile, getenv("AWS_PROFILE"), getenv("AWS_DEFAULT_PROFILE"))
	if profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	if files := p.sharedFiles("AWS_CONFIG_FILE", "config"); files != nil {
		opts = append(opts, config.WithSharedConfigFiles(files))
	}
	if files := p.sharedFiles("AWS_SHARED_CREDENTIALS_FILE", "credentials"); files != nil {
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
			return aws.Config{}, "", fmt.Errorf("%s: AWS_CA_BUNDLE: %w", p, err)
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
			p.env.Warn("%s: %s", p, fmt.Sprintf(format, v...))
		}
	})))
	if p.hooks.httpClient != nil {
		opts = append(opts, config.WithHTTPClient(p.hooks.httpClient))
	}
	if p.hooks.apiOptions != nil {
		opts = append(opts, config.WithAPIOptions(p.hooks.apiOptions))
	}

	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, "", fmt.Errorf("%s: load AWS configuration: %w", p, err)
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
			return aws.Config{}, "", fmt.Errorf("%s: no region: set `region:` in the provider, AWS_REGION, or a region in the AWS profile (instance metadata gave none)", p)
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
				o.RoleSessionName = first(getenv("AWS_ROLE_SESSION_NAME"), defaultSessionName)
			}))
	}
	if p.set.AssumeRoleARN != "" {
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(
			sts.NewFromConfig(cfg), p.set.AssumeRoleARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = first(p.set.SessionName, defaultSessionName)
				if p.set.ExternalID != "" {
					o.ExternalID = aws.String(p.set.ExternalID)
				}
			}))
	}
	if cfg.Credentials != nil {
		cfg.Credentials = markedCredentials{cfg.Credentials}
	}
	endpoint := first(p.set.Endpoint, getenv("AWS_ENDPOINT_URL_SECRETS_MANAGER"), getenv("AWS_ENDPOINT_URL"))
	return cfg, endpoint, nil
}

// sharedFiles names the shared config or credentials file from Env, or nil
// to let the SDK use its default.
func (p *provider) sharedFiles(variable, base string) []string {
	if f := p.env.Getenv(variable); f != "" {
		return []string{f}
	}
	if p.env.HomeDir != "" {
		return []string{filepath.Join(p.env.HomeDir, ".aws", base)}
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

func (p *provider) String() string { return fmt.Sprintf("%s %q", TypeName, p.name) }

func first(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
