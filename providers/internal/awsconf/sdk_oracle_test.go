package awsconf

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"

	"github.com/secretrun/secretrun/providers"
)

// sdkLoad is Load as it was over the SDK's config.LoadDefaultConfig,
// kept as the oracle Load is compared with. Unlike Load, the SDK reads
// the process's environment too: the tests set it to what Env says.
func sdkLoad(ctx context.Context, r Request) (Loaded, error) {
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
	if files := sdkSharedFiles(r.Env, getenv, "AWS_CONFIG_FILE", "config"); files != nil {
		opts = append(opts, config.WithSharedConfigFiles(files))
	}
	if files := sdkSharedFiles(r.Env, getenv, "AWS_SHARED_CREDENTIALS_FILE", "credentials"); files != nil {
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

func sdkSharedFiles(env providers.Env, getenv func(string) string, variable, base string) []string {
	if f := getenv(variable); f != "" {
		return []string{f}
	}
	if env.HomeDir != "" {
		return []string{filepath.Join(env.HomeDir, ".aws", base)}
	}
	return nil
}
