package awsconf

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/secretrun/secretrun/providers/internal/awsjson"
)

// loader is what a configuration is made of: the environment, the
// profile, the home directory and secretrun's own streams.
type loader struct {
	env  environment
	prof *profile
	// named is set when a profile was asked for by name (the provider's
	// `profile:`, AWS_PROFILE), which makes its credentials win over
	// keys in the environment.
	named bool
	// src is what the environment and the profile say of endpoints.
	src     *sources
	home    string
	environ []string
	stderr  io.Writer
}

// sources is the one entry of a loaded aws.Config's ConfigSources, what
// awsjson asks of it, as the environment, then the profile, say.
type sources struct {
	fips      aws.FIPSEndpointState
	dualStack aws.DualStackEndpointState
	ignore    *bool
	services  map[string]map[string]string
}

func (s *sources) GetUseFIPSEndpoint(context.Context) (aws.FIPSEndpointState, bool, error) {
	return s.fips, s.fips != aws.FIPSEndpointStateUnset, nil
}

func (s *sources) GetUseDualStackEndpoint(context.Context) (aws.DualStackEndpointState, bool, error) {
	return s.dualStack, s.dualStack != aws.DualStackEndpointStateUnset, nil
}

func (s *sources) GetIgnoreConfiguredEndpoints(context.Context) (bool, bool, error) {
	if s.ignore == nil {
		return false, false, nil
	}
	return *s.ignore, true, nil
}

// GetServiceBaseEndpoint is the endpoint_url the profile's `services`
// section gives the service, named by its SDK ID in lower case with
// underscores for spaces ("sso_oidc").
func (s *sources) GetServiceBaseEndpoint(_ context.Context, serviceID string) (string, bool, error) {
	v, ok := s.services[sharedServiceKey(serviceID)]["endpoint_url"]
	return v, ok, nil
}

func sharedServiceKey(serviceID string) string {
	return strings.ReplaceAll(strings.ToLower(serviceID), " ", "_")
}

// endpointSources resolves what the environment, then the profile, say
// of endpoints, as the SDK's sources answer in that order.
func endpointSources(env environment, prof *profile) *sources {
	s := &sources{fips: env.UseFIPSEndpoint, dualStack: env.UseDualStackEndpoint, ignore: env.IgnoreConfiguredEndpoints, services: prof.Services}
	if s.fips == aws.FIPSEndpointStateUnset {
		s.fips = prof.UseFIPSEndpoint
	}
	if s.dualStack == aws.DualStackEndpointStateUnset {
		s.dualStack = prof.UseDualStackEndpoint
	}
	if s.ignore == nil {
		s.ignore = prof.IgnoreConfiguredEndpoints
	}
	return s
}

func (l *loader) ignoreConfiguredEndpoints() bool {
	return l.src.ignore != nil && *l.src.ignore
}

// serviceEndpoint is where the SDK's client of svc, made from a
// configuration whose BaseEndpoint was base, sends its calls ("" for
// AWS's own): AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE> or the
// profile's `services` section, in that order, else base; but base alone
// when AWS_ENDPOINT_URL is set and AWS_ENDPOINT_URL_<SERVICE> is not, or
// when configured endpoints are ignored. The SDK makes the clients of its
// credential chain before it resolves BaseEndpoint, with none, so that
// with AWS_ENDPOINT_URL alone the role of a profile is assumed at AWS's
// own STS.
func (l *loader) serviceEndpoint(svc awsjson.Service, base string) string {
	global := l.env.getenv("AWS_ENDPOINT_URL")
	own := l.env.getenv("AWS_ENDPOINT_URL_" + strings.ReplaceAll(strings.ToUpper(svc.ID), " ", "_"))
	if global != "" && own == "" || l.ignoreConfiguredEndpoints() {
		return base
	}
	shared := l.prof.Services[sharedServiceKey(svc.ID)]["endpoint_url"]
	return First(global, own, shared, base)
}

// baseEndpoint is the configuration's BaseEndpoint: AWS_ENDPOINT_URL, else
// the profile's endpoint_url, unless configured endpoints are ignored.
func (l *loader) baseEndpoint() string {
	if l.ignoreConfiguredEndpoints() {
		return ""
	}
	return First(l.env.getenv("AWS_ENDPOINT_URL"), l.prof.BaseEndpoint)
}

// forService is cfg for the client of another service, in region, whose
// endpoint serviceEndpoint gives: the FIPS and dual-stack flags stay, the
// endpoints configured for the provider's service go.
func (l *loader) forService(cfg aws.Config, region string) aws.Config {
	cfg.ConfigSources = []any{&sources{fips: l.src.fips, dualStack: l.src.dualStack}}
	cfg.BaseEndpoint = nil
	cfg.Region = region
	return cfg
}

// sts is the STS client the SDK would make from cfg, whose BaseEndpoint
// was base.
func (l *loader) sts(cfg aws.Config, base string) stsClient {
	return stsClient{cfg: l.forService(cfg, cfg.Region), endpoint: l.serviceEndpoint(stsService, base)}
}

// chain is the SDK's default credential chain, as LoadDefaultConfig
// builds it from cfg (its region, HTTP client, retries, endpoint flags):
// a named profile; else keys in the environment; else
// AWS_WEB_IDENTITY_TOKEN_FILE; else the default profile, whose
// credentials, when it names none, are those of the container (ECS, EKS)
// or of the EC2 instance.
func (l *loader) chain(cfg aws.Config) (aws.CredentialsProvider, error) {
	var creds aws.CredentialsProvider
	var err error
	switch {
	case l.named:
		creds, err = l.fromProfile(cfg, l.prof)
	case l.env.Credentials.HasKeys():
		creds = credentials.StaticCredentialsProvider{Value: l.env.Credentials}
	case l.env.WebIdentityTokenFile != "":
		if l.env.RoleARN == "" {
			return nil, fmt.Errorf("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN, the role to assume with it, is not")
		}
		creds = &webIdentity{
			sts:         l.sts(cfg, ""),
			roleARN:     l.env.RoleARN,
			tokenFile:   l.env.WebIdentityTokenFile,
			sessionName: l.env.RoleSessionName,
			of:          "AWS_WEB_IDENTITY_TOKEN_FILE",
		}
	default:
		creds, err = l.fromProfile(cfg, l.prof)
	}
	if err != nil {
		return nil, err
	}
	return cached(creds), nil
}

// cached wraps creds in the SDK's cache unless it already is one, or holds
// keys that never expire: the cache would only run each signing's lookup of
// them in a goroutine of its own.
func cached(creds aws.CredentialsProvider, opts ...func(*aws.CredentialsCacheOptions)) aws.CredentialsProvider {
	switch creds.(type) {
	case *aws.CredentialsCache, credentials.StaticCredentialsProvider:
		return creds
	}
	return aws.NewCredentialsCache(creds, opts...)
}

// fromProfile is the SDK's resolveCredsFromProfile: the first of the
// profile's ways to credentials (a source_profile, keys, a
// credential_source, a web identity, SSO, a login session, a
// credential_process), else the container's or the instance's; and then
// the profile's role_arn, assumed with them.
func (l *loader) fromProfile(cfg aws.Config, p *profile) (aws.CredentialsProvider, error) {
	var creds aws.CredentialsProvider
	var err error
	switch {
	case p.Source != nil:
		creds, err = l.fromProfile(cfg, p.Source)
	case p.Credentials.HasKeys():
		creds = credentials.StaticCredentialsProvider{Value: p.Credentials}
	case p.CredentialSource != "":
		creds, err = l.fromCredentialSource(cfg, p)
	case p.WebIdentityTokenFile != "":
		// The role is the token's; no other is assumed after it.
		return &webIdentity{
			sts:         l.sts(cfg, ""),
			roleARN:     p.RoleARN,
			tokenFile:   p.WebIdentityTokenFile,
			sessionName: p.RoleSessionName,
			of:          p.String(),
		}, nil
	case p.hasSSO():
		creds, err = l.sso(cfg, p)
	case p.LoginSession != "":
		var file string
		file, err = loginTokenFile(l.env.getenv("AWS_LOGIN_CACHE_DIRECTORY"), l.home, p.LoginSession)
		creds = &loginCredentials{file: file, profile: p.Name}
	case p.CredentialProcess != "":
		creds = &processCredentials{command: p.CredentialProcess, environ: l.environ, stderr: l.stderr, profile: p.String()}
	case l.env.ContainerRelativeURI != "":
		creds = l.container(cfg, containerHost+l.env.ContainerRelativeURI)
	case l.env.ContainerFullURI != "":
		creds, err = l.localContainer(cfg)
	default:
		creds = l.instanceRole(cfg)
	}
	if err != nil {
		return nil, err
	}
	if p.RoleARN == "" {
		return creds, nil
	}
	if p.MFASerial != "" {
		return nil, fmt.Errorf("%s: role_arn %s needs an MFA code (mfa_serial), which cannot be asked for here: use a profile with credentials from `aws sts get-session-token`, or no mfa_serial", p, p.RoleARN)
	}
	var duration time.Duration
	// As in the SDK, a duration_seconds of 15 minutes or less leaves the
	// default.
	if p.RoleDuration != nil && *p.RoleDuration/time.Minute > 15 {
		duration = *p.RoleDuration
	}
	cfg.Credentials = creds
	return &assumeRole{
		sts:         l.sts(cfg, ""),
		roleARN:     p.RoleARN,
		sessionName: p.RoleSessionName,
		externalID:  p.ExternalID,
		duration:    duration,
		of:          p.String(),
	}, nil
}

func (l *loader) fromCredentialSource(cfg aws.Config, p *profile) (aws.CredentialsProvider, error) {
	switch p.CredentialSource {
	case "Ec2InstanceMetadata":
		return l.instanceRole(cfg), nil
	case "Environment":
		// Empty keys fail when used, as in the SDK.
		return credentials.StaticCredentialsProvider{Value: l.env.Credentials}, nil
	case "EcsContainer":
		switch {
		case l.env.ContainerRelativeURI != "":
			return l.container(cfg, containerHost+l.env.ContainerRelativeURI), nil
		case l.env.ContainerFullURI != "":
			return l.localContainer(cfg)
		}
		return nil, fmt.Errorf("%s: credential_source EcsContainer needs AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or AWS_CONTAINER_CREDENTIALS_FULL_URI", p)
	}
	return nil, fmt.Errorf("%s: credential_source %q: want EcsContainer, Ec2InstanceMetadata or Environment", p, p.CredentialSource)
}

// sso is the SSO provider of p: the token cache of its sso-session, or
// of its start URL for the legacy keys.
func (l *loader) sso(cfg aws.Config, p *profile) (aws.CredentialsProvider, error) {
	if err := p.checkSSO(); err != nil {
		return nil, err
	}
	region, key, login := p.SSORegion, p.SSOStartURL, "aws sso login --profile "+p.Name
	if p.SSOSession != nil {
		region, key = p.SSOSession.Region, p.SSOSession.Name
	}
	file, err := ssoTokenFile(l.home, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &ssoCredentials{
		cfg:       l.forService(cfg, region),
		endpoint:  l.serviceEndpoint(ssoService, ""),
		oidcAt:    l.serviceEndpoint(oidcService, ""),
		accountID: p.SSOAccountID,
		roleName:  p.SSORoleName,
		tokenFile: file,
		session:   p.SSOSession,
		profile:   p.String(),
		login:     login,
	}, nil
}

// containerHost is where ECS serves the credentials of a task, at the
// path AWS_CONTAINER_CREDENTIALS_RELATIVE_URI gives.
const containerHost = "http://169.254.170.2"

// container is the SDK's endpointcreds provider for url, renewed five
// minutes before the credentials expire.
func (l *loader) container(cfg aws.Config, url string) aws.CredentialsProvider {
	provider := endpointcreds.New(url, func(o *endpointcreds.Options) {
		o.AuthorizationToken = l.env.ContainerToken
		if file := l.env.ContainerTokenFile; file != "" {
			// Read at each call: EKS renews the file.
			o.AuthorizationTokenProvider = endpointcreds.TokenProviderFunc(func() (string, error) {
				token, err := os.ReadFile(file)
				if err != nil {
					return "", fmt.Errorf("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %w", err)
				}
				return string(token), nil
			})
		}
		if cfg.Retryer != nil {
			o.Retryer = cfg.Retryer()
		}
	})
	return cached(provider, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 5 * time.Minute })
}

// localContainer is the provider of AWS_CONTAINER_CREDENTIALS_FULL_URI,
// which, over plain HTTP, must be this machine or the ECS or EKS agent.
func (l *loader) localContainer(cfg aws.Config) (aws.CredentialsProvider, error) {
	full := l.env.ContainerFullURI
	u, err := url.Parse(full)
	if err != nil {
		return nil, fmt.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI: %w", err)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI %s: no host", full)
	}
	if u.Scheme == "http" {
		allowed, err := containerHostAllowed(host)
		if err != nil {
			return nil, fmt.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI %s: %w", full, err)
		}
		if !allowed {
			return nil, fmt.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI %s: over plain http only a loopback address or the ECS or EKS agent may serve credentials", full)
		}
	}
	return l.container(cfg, full), nil
}

// containerHostAllowed reports whether host, or every address it resolves
// to, is a loopback address or the ECS or EKS container agent's.
func containerHostAllowed(host string) (bool, error) {
	allowed := func(ip net.IP) bool {
		return ip.IsLoopback() || ip.Equal(net.IPv4(169, 254, 170, 2)) || ip.Equal(net.IPv4(169, 254, 170, 23)) ||
			ip.Equal(net.ParseIP("fd00:ec2::23"))
	}
	if ip := net.ParseIP(host); ip != nil {
		return allowed(ip), nil
	}
	addrs, err := net.LookupHost(host)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip == nil || !allowed(ip) {
			return false, nil
		}
	}
	return true, nil
}

// instanceRole is the SDK's ec2rolecreds provider: the credentials of the
// EC2 instance's role, from instance metadata.
func (l *loader) instanceRole(cfg aws.Config) aws.CredentialsProvider {
	return cached(ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = l.imds(cfg) }))
}

// imds is the SDK's instance metadata client, set as the environment
// (AWS_EC2_METADATA_DISABLED, AWS_EC2_METADATA_SERVICE_ENDPOINT and
// _ENDPOINT_MODE, AWS_EC2_METADATA_V1_DISABLED), then the profile, say.
// Everything is given, so that the client reads nothing of the process's
// own environment.
func (l *loader) imds(cfg aws.Config) *imds.Client {
	o := imds.Options{
		HTTPClient:        cfg.HTTPClient,
		Logger:            cfg.Logger,
		ClientEnableState: imds.ClientEnabled,
		EndpointMode:      l.env.IMDSEndpointMode,
		Endpoint:          First(l.env.IMDSEndpoint, l.prof.EC2IMDSEndpoint),
	}
	if cfg.Retryer != nil {
		o.Retryer = cfg.Retryer()
	}
	if l.env.IMDSDisabled {
		o.ClientEnableState = imds.ClientDisabled
	}
	if o.EndpointMode == imds.EndpointModeStateUnset {
		o.EndpointMode = l.prof.EC2IMDSEndpointMode
	}
	if o.Endpoint == "" {
		o.Endpoint = "http://169.254.169.254"
		if o.EndpointMode == imds.EndpointModeStateIPv6 {
			o.Endpoint = "http://[fd00:ec2::254]"
		}
	}
	v1Disabled := l.env.IMDSv1Disabled
	if v1Disabled == nil {
		v1Disabled = l.prof.EC2IMDSv1Disabled
	}
	if v1Disabled != nil {
		o.EnableFallback = aws.BoolTernary(!*v1Disabled)
	}
	return imds.New(o)
}
