package awsconf

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

const (
	profilePrefix    = "profile "
	ssoSessionPrefix = "sso-session "
	servicesPrefix   = "services "
	defaultProfile   = "default"
)

// profile is one profile of the shared config and credentials files, with
// the profile its role's credentials come from (source_profile), as the
// SDK's SharedConfig holds it.
type profile struct {
	Name string
	// where names the files the profile is in, for messages.
	where string

	Credentials aws.Credentials

	CredentialSource     string
	CredentialProcess    string
	WebIdentityTokenFile string

	SSOSessionName string
	SSOSession     *ssoSession
	SSORegion      string
	SSOStartURL    string
	SSOAccountID   string
	SSORoleName    string

	RoleARN         string
	ExternalID      string
	MFASerial       string
	RoleSessionName string
	RoleDuration    *time.Duration

	SourceProfileName string
	Source            *profile

	Region string

	EC2IMDSEndpointMode imds.EndpointModeState
	EC2IMDSEndpoint     string
	EC2IMDSv1Disabled   *bool

	UseDualStackEndpoint aws.DualStackEndpointState
	UseFIPSEndpoint      aws.FIPSEndpointState

	DefaultsMode     aws.DefaultsMode
	RetryMaxAttempts int
	RetryMode        aws.RetryMode

	CABundle string

	IgnoreConfiguredEndpoints  *bool
	BaseEndpoint               string
	Services                   map[string]map[string]string
	DisableClockSkewCorrection *bool

	LoginSession string
}

type ssoSession struct {
	Name, Region, StartURL string
}

// loadProfile reads the profile name from the shared files, and the
// profiles its credentials come from. A profile that is in neither file
// is an error when it was asked for by name (named), and an empty profile
// otherwise, as the SDK's default profile is.
func loadProfile(configFile, credentialsFile, name string, named bool) (*profile, error) {
	if name == "" {
		name = defaultProfile
	}
	sections, err := readSharedFiles(configFile, credentialsFile)
	if err != nil {
		return nil, err
	}
	p, err := resolveProfile(sections, name, map[string]bool{})
	var missing *profileNotFoundError
	if errors.As(err, &missing) && missing.name == name {
		if named {
			return nil, fmt.Errorf("no profile %q in %s", name, filesOf(configFile, credentialsFile))
		}
		return &profile{Name: name}, nil
	}
	return p, err
}

func filesOf(configFile, credentialsFile string) string {
	switch {
	case configFile == "" && credentialsFile == "":
		return "the shared config or credentials file (no home directory to find them in)"
	case configFile == "":
		return credentialsFile
	case credentialsFile == "":
		return configFile
	}
	return configFile + " or " + credentialsFile
}

// readSharedFiles reads the config file and the credentials file and
// merges them as the SDK does: in the config file only [default],
// [profile x], [sso-session x] and [services x] count, [profile x] being
// profile x; in the credentials file every section but [profile x] is a
// profile, and its keys win over the config file's. A file that cannot
// be opened is no file.
func readSharedFiles(configFile, credentialsFile string) (iniSections, error) {
	config, err := readINIFile(configFile)
	if err != nil {
		return nil, err
	}
	profiles := iniSections{}
	var renamed []*iniSection
	for name, s := range config {
		switch {
		case strings.HasPrefix(name, profilePrefix):
			s.name = strings.TrimPrefix(name, profilePrefix)
			renamed = append(renamed, s)
		case strings.HasPrefix(name, ssoSessionPrefix), strings.HasPrefix(name, servicesPrefix), strings.EqualFold(name, defaultProfile):
			profiles[name] = s
		}
	}
	// [profile x] wins over a bare [x], and [profile default] over
	// [default].
	for _, s := range renamed {
		profiles[s.name] = s
	}

	creds, err := readINIFile(credentialsFile)
	if err != nil {
		return nil, err
	}
	for name, src := range creds {
		if strings.HasPrefix(name, profilePrefix) {
			continue
		}
		dst, ok := profiles[name]
		if !ok {
			profiles[name] = src
			continue
		}
		dst.files = append(dst.files, src.files...)
		dst.errs = src.errs
		if src.has(accessKeyIDKey) && src.has(secretAccessKeyKey) {
			dst.values[accessKeyIDKey] = iniValue{str: src.get(accessKeyIDKey)}
			dst.values[secretAccessKeyKey] = iniValue{str: src.get(secretAccessKeyKey)}
			if src.has(sessionTokenKey) {
				dst.values[sessionTokenKey] = iniValue{str: src.get(sessionTokenKey)}
			}
		}
		for _, k := range mergedKeys {
			if src.has(k) {
				dst.values[k] = iniValue{str: src.get(k)}
			}
		}
	}
	return profiles, nil
}

const (
	accessKeyIDKey     = "aws_access_key_id"
	secretAccessKeyKey = "aws_secret_access_key"
	sessionTokenKey    = "aws_session_token"
)

// mergedKeys are the keys of a credentials file's profile that the SDK
// carries over to the config file's profile of the same name; the others
// are dropped.
var mergedKeys = [...]string{
	"role_arn", "source_profile", "credential_source", "external_id", "mfa_serial", "role_session_name",
	"region", "endpoint_discovery_enabled", "credential_process", "web_identity_token_file",
	"s3_use_arn_region", "s3_disable_multiregion_access_points", "ec2_metadata_service_endpoint_mode",
	"ec2_metadata_service_endpoint", "ec2_metadata_v1_disabled", "use_dualstack_endpoint",
	"use_fips_endpoint", "defaults_mode", "retry_mode", "ca_bundle", "duration_seconds", "max_attempts",
	"sso_session", "sso_account_id", "sso_region", "sso_role_name", "sso_start_url",
	"auth_scheme_preference", "login_session",
}

func readINIFile(path string) (iniSections, error) {
	if path == "" {
		return iniSections{}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		var pathErr *os.PathError
		if errors.As(err, &pathErr) && pathErr.Op == "open" {
			return iniSections{}, nil
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	sections := parseINI(string(data))
	for _, s := range sections {
		s.files = []string{path}
		if s.has(accessKeyIDKey) != s.has(secretAccessKeyKey) {
			s.errs = append(s.errs, "partial credentials: aws_access_key_id and aws_secret_access_key go together")
		}
	}
	return sections, nil
}

// profileNotFoundError says that a profile is in neither file.
type profileNotFoundError struct{ name string }

func (e *profileNotFoundError) Error() string {
	return fmt.Sprintf("no profile %q in the shared config or credentials file", e.name)
}

// resolveProfile reads the profile name and, through source_profile, the
// profiles its credentials come from, as the SDK's setFromIniSections
// does: a profile met again on the chain gives its own credentials and
// assumes no role, which ends a loop, and a source profile with keys of
// its own ends the chain there.
func resolveProfile(sections iniSections, name string, visited map[string]bool) (*profile, error) {
	s, ok := sections[name]
	if !ok {
		return nil, &profileNotFoundError{name}
	}
	p := &profile{Name: name, where: strings.Join(s.files, " and ")}
	if err := p.read(s); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if visited[name] {
		p.RoleARN, p.ExternalID, p.MFASerial, p.RoleSessionName, p.SourceProfileName = "", "", "", "", ""
	} else if kind := p.roleCredentialKind(); kind != "" && p.RoleARN == "" {
		return nil, fmt.Errorf("%s: %s needs role_arn", p, kind)
	}
	if len(visited) != 0 && p.Credentials.HasKeys() {
		return p, nil
	}
	visited[name] = true

	kinds := 0
	for _, set := range []string{p.SourceProfileName, p.CredentialSource, p.CredentialProcess, p.WebIdentityTokenFile} {
		if set != "" {
			kinds++
		}
	}
	if kinds > 1 {
		return nil, fmt.Errorf("%s: only one of source_profile, credential_source, credential_process and web_identity_token_file may be given", p)
	}

	if p.SourceProfileName != "" {
		p.CredentialSource, p.CredentialProcess, p.WebIdentityTokenFile = "", "", ""
		p.Credentials = aws.Credentials{}
		p.SSOAccountID, p.SSORegion, p.SSORoleName, p.SSOStartURL = "", "", "", ""
		src, err := resolveProfile(sections, p.SourceProfileName, visited)
		var missing *profileNotFoundError
		if errors.As(err, &missing) && missing.name == p.SourceProfileName {
			return nil, fmt.Errorf("%s: source_profile %s is in neither the shared config nor the credentials file", p, p.SourceProfileName)
		}
		if err != nil {
			return nil, err
		}
		if !src.hasCredentials() {
			return nil, fmt.Errorf("%s: source_profile %s has no credentials to assume %s with", p, p.SourceProfileName, p.RoleARN)
		}
		p.Source = src
	}

	if p.SSOSessionName != "" {
		sess, ok := sections[ssoSessionPrefix+strings.TrimSpace(p.SSOSessionName)]
		if !ok {
			return nil, fmt.Errorf("%s: sso_session %s: no [sso-session %s] section", p, p.SSOSessionName, strings.TrimSpace(p.SSOSessionName))
		}
		p.SSOSession = &ssoSession{Name: p.SSOSessionName, Region: sess.get("sso_region"), StartURL: sess.get("sso_start_url")}
	}
	if name := s.get("services"); name != "" {
		if svc, ok := sections[servicesPrefix+name]; ok {
			p.Services = map[string]map[string]string{}
			for k, v := range svc.values {
				p.Services[k] = v.sub
			}
		}
	}
	return p, nil
}

// String names the profile, and its files, in messages.
func (p *profile) String() string {
	if p.where == "" {
		return "profile " + p.Name
	}
	return "profile " + p.Name + " (" + p.where + ")"
}

// roleCredentialKind names the setting that gives credentials only to
// assume role_arn with, if the profile has one.
func (p *profile) roleCredentialKind() string {
	switch {
	case p.SourceProfileName != "":
		return "source_profile"
	case p.CredentialSource != "":
		return "credential_source"
	case p.WebIdentityTokenFile != "":
		return "web_identity_token_file"
	}
	return ""
}

func (p *profile) hasCredentials() bool {
	return p.SourceProfileName != "" || p.CredentialSource != "" || p.CredentialProcess != "" ||
		p.WebIdentityTokenFile != "" || p.hasSSO() || p.Credentials.HasKeys()
}

func (p *profile) hasSSO() bool { return p.SSOSessionName != "" || p.hasLegacySSO() }

func (p *profile) hasLegacySSO() bool {
	return p.SSORegion != "" || p.SSOAccountID != "" || p.SSOStartURL != "" || p.SSORoleName != ""
}

// checkSSO rejects an SSO profile that lacks what GetRoleCredentials needs,
// as the SDK does before any call.
func (p *profile) checkSSO() error {
	var missing []string
	need := func(key, value string) {
		if value == "" {
			missing = append(missing, key)
		}
	}
	if p.SSOSession != nil {
		need("sso_region (in its [sso-session])", p.SSOSession.Region)
		need("sso_start_url (in its [sso-session])", p.SSOSession.StartURL)
	} else {
		need("sso_region", p.SSORegion)
		need("sso_start_url", p.SSOStartURL)
		need("sso_account_id", p.SSOAccountID)
		need("sso_role_name", p.SSORoleName)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s uses SSO but has no %s", p, strings.Join(missing, ", "))
	}
	if p.SSOSession != nil {
		if p.SSORegion != "" && p.SSORegion != p.SSOSession.Region {
			return fmt.Errorf("%s: sso_region differs from the one of [sso-session %s]", p, p.SSOSession.Name)
		}
		if p.SSOStartURL != "" && p.SSOStartURL != p.SSOSession.StartURL {
			return fmt.Errorf("%s: sso_start_url differs from the one of [sso-session %s]", p, p.SSOSession.Name)
		}
	}
	return nil
}

// read takes the profile's keys from its section; values that cannot be
// read are errors, as in the SDK.
func (p *profile) read(s *iniSection) error {
	if len(s.errs) > 0 {
		return errors.New(s.errs[len(s.errs)-1])
	}
	str := func(dst *string, key string) {
		if s.has(key) {
			*dst = s.get(key)
		}
	}
	str(&p.RoleARN, "role_arn")
	str(&p.ExternalID, "external_id")
	str(&p.MFASerial, "mfa_serial")
	str(&p.RoleSessionName, "role_session_name")
	str(&p.SourceProfileName, "source_profile")
	str(&p.CredentialSource, "credential_source")
	str(&p.Region, "region")
	str(&p.SSOSessionName, "sso_session")
	str(&p.SSORegion, "sso_region")
	str(&p.SSOStartURL, "sso_start_url")
	str(&p.SSOAccountID, "sso_account_id")
	str(&p.SSORoleName, "sso_role_name")
	if s.has("duration_seconds") {
		// As in the SDK, a value that is no integer is a duration of 0,
		// which leaves the default.
		v, _ := iniInt(s.get("duration_seconds"))
		d := time.Duration(v) * time.Second
		p.RoleDuration = &d
	}
	str(&p.CredentialProcess, "credential_process")
	str(&p.WebIdentityTokenFile, "web_identity_token_file")

	if s.has("ec2_metadata_service_endpoint_mode") {
		if err := p.EC2IMDSEndpointMode.SetFromString(s.get("ec2_metadata_service_endpoint_mode")); err != nil {
			return fmt.Errorf("ec2_metadata_service_endpoint_mode: %q is neither IPv4 nor IPv6", s.get("ec2_metadata_service_endpoint_mode"))
		}
	}
	str(&p.EC2IMDSEndpoint, "ec2_metadata_service_endpoint")
	p.EC2IMDSv1Disabled = iniBoolPtr(s, "ec2_metadata_v1_disabled")
	if s.has("use_dualstack_endpoint") {
		p.UseDualStackEndpoint = aws.DualStackEndpointStateDisabled
		if v, _ := iniBool(s.get("use_dualstack_endpoint")); v {
			p.UseDualStackEndpoint = aws.DualStackEndpointStateEnabled
		}
	}
	if s.has("use_fips_endpoint") {
		p.UseFIPSEndpoint = aws.FIPSEndpointStateDisabled
		if v, _ := iniBool(s.get("use_fips_endpoint")); v {
			p.UseFIPSEndpoint = aws.FIPSEndpointStateEnabled
		}
	}
	if s.has("defaults_mode") {
		if v := s.get("defaults_mode"); !p.DefaultsMode.SetFromString(v) {
			return fmt.Errorf("defaults_mode: %q: %s", v, defaultsModes)
		}
	}
	if s.has("max_attempts") {
		v, ok := iniInt(s.get("max_attempts"))
		if !ok {
			return fmt.Errorf("max_attempts: %q is not an integer", s.get("max_attempts"))
		}
		p.RetryMaxAttempts = int(v)
	}
	if s.has("retry_mode") {
		mode, err := aws.ParseRetryMode(s.get("retry_mode"))
		if err != nil {
			return fmt.Errorf("retry_mode: %q is neither standard nor adaptive", s.get("retry_mode"))
		}
		p.RetryMode = mode
	}
	str(&p.CABundle, "ca_bundle")
	p.IgnoreConfiguredEndpoints = iniBoolPtr(s, "ignore_configured_endpoint_urls")
	str(&p.BaseEndpoint, "endpoint_url")
	if s.has("disable_clock_skew_correction") {
		switch v := s.get("disable_clock_skew_correction"); v {
		case "true", "false":
			b := v == "true"
			p.DisableClockSkewCorrection = &b
		default:
			return fmt.Errorf("disable_clock_skew_correction: %q is neither true nor false", v)
		}
	}
	for _, c := range unusedProfileChoices() {
		if s.has(c.name) && !c.valid(s.get(c.name)) {
			return fmt.Errorf("%s: %q: want %s", c.name, s.get(c.name), c.want)
		}
	}
	if creds := (aws.Credentials{
		AccessKeyID:     s.get(accessKeyIDKey),
		SecretAccessKey: s.get(secretAccessKeyKey),
		SessionToken:    s.get(sessionTokenKey),
		AccountID:       s.get("aws_account_id"),
		Source:          "SharedConfigCredentials",
	}); creds.HasKeys() {
		p.Credentials = creds
	}
	str(&p.LoginSession, "login_session")
	return nil
}

// iniInt reads an integer as the SDK does (strconv's base prefixes allowed).
func iniInt(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 0, 64)
	return v, err == nil
}

func iniBool(s string) (bool, bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// iniBoolPtr is nil when key is absent; a value that is neither true nor
// false reads as false, as in the SDK.
func iniBoolPtr(s *iniSection, key string) *bool {
	if !s.has(key) {
		return nil
	}
	v, _ := iniBool(s.get(key))
	return &v
}
