package awsconf

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// environment is what the AWS variables of Env say, as the SDK's
// EnvConfig reads them, for the settings secretrun uses.
type environment struct {
	getenv func(string) string

	// Credentials are the static keys, when both are there.
	Credentials aws.Credentials

	ContainerFullURI, ContainerRelativeURI         string
	ContainerToken, ContainerTokenFile             string
	WebIdentityTokenFile, RoleARN, RoleSessionName string

	IMDSDisabled     bool
	IMDSEndpointMode imds.EndpointModeState
	IMDSEndpoint     string
	IMDSv1Disabled   *bool

	UseFIPSEndpoint      aws.FIPSEndpointState
	UseDualStackEndpoint aws.DualStackEndpointState
	DefaultsMode         aws.DefaultsMode
	RetryMaxAttempts     int
	RetryMode            aws.RetryMode

	IgnoreConfiguredEndpoints  *bool
	DisableClockSkewCorrection *bool
}

// readEnvironment reads the environment and rejects the values the SDK
// rejects, naming the variable; those secretrun has no use for are
// checked too, so that a setting the AWS CLI refuses is not silently
// taken here either.
func readEnvironment(getenv func(string) string) (environment, error) {
	e := environment{getenv: getenv}
	if creds := (aws.Credentials{
		AccessKeyID:     First(getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_ACCESS_KEY")),
		SecretAccessKey: First(getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SECRET_KEY")),
		Source:          "EnvConfigCredentials",
	}); creds.HasKeys() {
		creds.SessionToken = getenv("AWS_SESSION_TOKEN")
		creds.AccountID = getenv("AWS_ACCOUNT_ID")
		e.Credentials = creds
	}
	e.ContainerFullURI = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
	e.ContainerRelativeURI = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
	e.ContainerToken = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN")
	e.ContainerTokenFile = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
	e.WebIdentityTokenFile = getenv("AWS_WEB_IDENTITY_TOKEN_FILE")
	e.RoleARN = getenv("AWS_ROLE_ARN")
	e.RoleSessionName = getenv("AWS_ROLE_SESSION_NAME")
	e.IMDSDisabled = strings.EqualFold(getenv("AWS_EC2_METADATA_DISABLED"), "true")
	e.IMDSEndpoint = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")

	var err error
	boolean := func(name string) *bool {
		v := getenv(name)
		if v == "" || err != nil {
			return nil
		}
		b, ok := iniBool(v)
		if !ok {
			err = fmt.Errorf("%s=%q: want true or false", name, v)
			return nil
		}
		return &b
	}
	e.IMDSv1Disabled = boolean("AWS_EC2_METADATA_V1_DISABLED")
	e.IgnoreConfiguredEndpoints = boolean("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
	e.DisableClockSkewCorrection = boolean("AWS_DISABLE_CLOCK_SKEW_CORRECTION")
	if b := boolean("AWS_USE_FIPS_ENDPOINT"); b != nil {
		e.UseFIPSEndpoint = aws.FIPSEndpointStateDisabled
		if *b {
			e.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
		}
	}
	if b := boolean("AWS_USE_DUALSTACK_ENDPOINT"); b != nil {
		e.UseDualStackEndpoint = aws.DualStackEndpointStateDisabled
		if *b {
			e.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled
		}
	}
	for _, name := range []string{"AWS_DISABLE_REQUEST_COMPRESSION", "AWS_S3_USE_ARN_REGION",
		"AWS_S3_DISABLE_MULTIREGION_ACCESS_POINTS", "AWS_S3_DISABLE_EXPRESS_SESSION_AUTH"} {
		boolean(name)
	}
	if err != nil {
		return e, err
	}

	if v := getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"); v != "" {
		if err := e.IMDSEndpointMode.SetFromString(v); err != nil {
			return e, fmt.Errorf("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=%q: want IPv4 or IPv6", v)
		}
	}
	if v := getenv("AWS_DEFAULTS_MODE"); v != "" && !e.DefaultsMode.SetFromString(v) {
		return e, fmt.Errorf("AWS_DEFAULTS_MODE=%q: %s", v, defaultsModes)
	}
	if v := getenv("AWS_MAX_ATTEMPTS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return e, fmt.Errorf("AWS_MAX_ATTEMPTS=%q: not an integer", v)
		}
		e.RetryMaxAttempts = int(n)
	}
	if v := getenv("AWS_RETRY_MODE"); v != "" {
		mode, err := aws.ParseRetryMode(v)
		if err != nil {
			return e, fmt.Errorf("AWS_RETRY_MODE=%q: want standard or adaptive", v)
		}
		e.RetryMode = mode
	}
	for _, c := range unusedEnvChoices() {
		if v := getenv(c.name); v != "" && !c.valid(v) {
			return e, fmt.Errorf("%s=%q: want %s", c.name, v, c.want)
		}
	}
	return e, nil
}

const defaultsModes = "want auto, cross-region, in-region, legacy, mobile or standard"

// choice is a setting secretrun has no use for, a variable or a shared
// config key, checked as the SDK checks it.
type choice struct {
	name  string
	valid func(string) bool
	want  string
}

func unusedEnvChoices() []choice {
	return []choice{
		{"AWS_ENABLE_ENDPOINT_DISCOVERY", oneOfFold("true", "false", "auto"), "true, false or auto"},
		{"AWS_REQUEST_MIN_COMPRESSION_SIZE_BYTES", compressionSize(10), "an integer from 0 to 10485760"},
		{"AWS_ACCOUNT_ID_ENDPOINT_MODE", oneOf("preferred", "required", "disabled"), "preferred, required or disabled"},
		{"AWS_REQUEST_CHECKSUM_CALCULATION", oneOfFold("when_supported", "when_required"), "when_supported or when_required"},
		{"AWS_RESPONSE_CHECKSUM_VALIDATION", oneOfFold("when_supported", "when_required"), "when_supported or when_required"},
		{"AWS_RESTRICT_FILE_PERMISSIONS", oneOfFold("user_read_write", "unrestricted"), "user_read_write or unrestricted"},
	}
}

func unusedProfileChoices() []choice {
	return []choice{
		// Unlike the environment's booleans, the shared config's are taken
		// in these spellings only.
		{"disable_request_compression", oneOf("true", "false"), "true or false"},
		{"request_min_compression_size_bytes", compressionSize(0), "an integer from 0 to 10485760"},
		{"account_id_endpoint_mode", oneOf("preferred", "required", "disabled"), "preferred, required or disabled"},
		{"request_checksum_calculation", oneOfFold("when_supported", "when_required"), "when_supported or when_required"},
		{"response_checksum_validation", oneOfFold("when_supported", "when_required"), "when_supported or when_required"},
	}
}

func oneOf(values ...string) func(string) bool {
	return func(v string) bool { return slices.Contains(values, v) }
}

func oneOfFold(values ...string) func(string) bool {
	return func(v string) bool { return slices.Contains(values, strings.ToLower(v)) }
}

// compressionSize accepts an integer in the SDK's range, read in base:
// 10 in the environment, 0 (prefixes such as 0x allowed) in the shared
// config.
func compressionSize(base int) func(string) bool {
	return func(v string) bool {
		n, err := strconv.ParseInt(v, base, 64)
		return err == nil && n >= 0 && n <= 10485760
	}
}
