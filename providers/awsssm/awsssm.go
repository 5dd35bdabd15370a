// Package awsssm reads parameters from AWS Systems Manager Parameter Store:
// provider type `aws-ssm`.
//
// Provider settings, shared with aws-secrets-manager:
//
//	region:          default $AWS_REGION, $AWS_DEFAULT_REGION, then the profile's region
//	profile:         a profile of the shared config (~/.aws/config), including SSO profiles
//	endpoint:        another SSM endpoint; default $AWS_ENDPOINT_URL_SSM, $AWS_ENDPOINT_URL
//	assume_role_arn: a role to assume with the credentials found
//	external_id:     the external ID the role's trust policy requires
//	session_name:    the role session's name (default "secretrun")
//
// Credentials come from the AWS SDK's default chain: static keys in the
// environment, the shared config (profiles, SSO, credential_process), web
// identity (CI OIDC, EKS), container and instance metadata.
//
// Without an endpoint given, calls go where the SDK would send them: the
// shared config's `services` section for ssm, else the profile's
// endpoint_url, else https://ssm.REGION.amazonaws.com (amazonaws.com.cn in
// China, and so on), its FIPS or dual-stack variant when
// AWS_USE_FIPS_ENDPOINT, AWS_USE_DUALSTACK_ENDPOINT or the profile ask for
// one. Either with an endpoint given is refused, as the SDK refuses it.
//
// Source keys (one of parameter or path):
//
//	parameter: a parameter's name or ARN; one plain value, for `as:`
//	path:      every parameter directly below this hierarchy, one field each
//	recursive: with path, every parameter at any depth below it
//
// A `version:` on a parameter source selects a version number (`version: 3`
// reads name:3) or a label (`version: prod` reads name:prod); writing the
// selector in the name (`parameter: /app/db:3`) means the same. A path
// source reads the current version of every parameter below it.
//
// SecureString values are decrypted. A StringList is one value, its items
// separated by commas as Parameter Store keeps it. In a path source each
// parameter's field is the last segment of its name (/app/prod/DB_URL gives
// DB_URL); two parameters with the same last segment, possible only with
// `recursive: true`, are an error naming both. A path with no parameter
// below it is ErrNotFound.
//
// Parameter sources are read with GetParameters, ten names a call, several
// calls at a time; a path is read with GetParametersByPath, ten parameters a
// page. Versions makes the same calls without decryption (no KMS request)
// and labels each source with the parameters' version numbers, so deleting a
// parameter, adding one below a path or moving a label is a change.
package awsssm

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

// TypeName is the value of `type:` for this provider.
const TypeName = "aws-ssm"

// Type returns the provider type to register.
func Type() providers.Type {
	return providers.Type{Name: TypeName, New: func(name string, opts providers.Options, env providers.Env) (providers.Provider, error) {
		return newProvider(name, opts, env, awsconf.Hooks{})
	}}
}

type provider struct {
	name string
	awsconf.Instance
	conn awsconf.Lazy[conn]
}

// conn is the client, made on first use and shared by every call.
type conn struct {
	ssm    *api
	loaded awsconf.Loaded
	// noBatch is set once GetParameters was refused while GetParameter
	// was allowed for every name: a policy that grants the single read
	// only, so batching would only cost a refused call each time.
	noBatch atomic.Bool
}

func newProvider(name string, opts providers.Options, env providers.Env, h awsconf.Hooks) (*provider, error) {
	in, err := awsconf.NewInstance(opts, env, h)
	if err != nil {
		return nil, err
	}
	return &provider{name: name, Instance: in}, nil
}

func (p *provider) String() string { return fmt.Sprintf("%s %q", TypeName, p.name) }

// ref is what one source reads: a parameter, at a selector or its current
// version, or the parameters below a path.
type ref struct {
	name      string
	selector  string
	path      string
	recursive bool
}

func (r *ref) String() string {
	if r.path != "" {
		return r.path
	}
	return r.id()
}

// id is the name as GetParameters takes it, selector included.
func (r *ref) id() string {
	if r.selector != "" {
		return r.name + ":" + r.selector
	}
	return r.name
}

// describe names what r reads in messages.
func (r *ref) describe() string {
	switch {
	case r.path != "" && r.recursive:
		return "parameters below " + r.path + " (recursive)"
	case r.path != "":
		return "parameters below " + r.path
	case r.selector == "":
		return "parameter " + r.name
	case isNumber(r.selector):
		return "parameter " + r.name + " version " + r.selector
	}
	return "parameter " + r.name + " label " + r.selector
}

type sourceKeys struct {
	Parameter string `yaml:"parameter"`
	Path      string `yaml:"path"`
	Recursive bool   `yaml:"recursive"`
}

// validName says whether s is a parameter name or path: letters, digits
// and _.-/ (AWS's documented constraint). A loop, not a regexp, so that no
// start of secretrun compiles one.
func validName(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return !nameRune(r) && r != '/' })
}

// validSelector says whether s is a version number or a label.
func validSelector(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool { return !nameRune(r) })
}

func nameRune(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '.' || r == '-'
}

// ParseSource reads `parameter:` or `path:`.
func (p *provider) ParseSource(src *providers.Source, opts providers.Options) (providers.Ref, error) {
	var k sourceKeys
	if err := opts.Decode(&k); err != nil {
		return nil, err
	}
	switch {
	case k.Parameter == "" && k.Path == "":
		return nil, fmt.Errorf("missing `parameter:` (a name or ARN) or `path:` (a hierarchy such as /myapp/prod/)")
	case k.Parameter != "" && k.Path != "":
		return nil, fmt.Errorf("`parameter` and `path` exclude each other")
	case k.Path != "":
		return parsePath(src, k)
	}
	return parseParameter(src, k)
}

func parsePath(src *providers.Source, k sourceKeys) (*ref, error) {
	switch {
	case !strings.HasPrefix(k.Path, "/"):
		return nil, fmt.Errorf("path %q: a hierarchy starts with /", k.Path)
	case !validName(k.Path) || strings.Contains(k.Path, "//"):
		return nil, fmt.Errorf("path %q: only letters, digits and _.-/ are allowed, with no empty level", k.Path)
	case src.Version != "":
		return nil, fmt.Errorf("`path` reads the current version of each parameter; pin versions on `parameter:` sources")
	case src.As != "":
		return nil, fmt.Errorf("`path` gives a field per parameter; `as` names a single plain value, for `parameter:`")
	}
	path := k.Path
	if len(path) > 1 {
		// GetParametersByPath takes levels, not string prefixes: /app and
		// /app/ are the same hierarchy.
		path = strings.TrimSuffix(path, "/")
	}
	return &ref{path: path, recursive: k.Recursive}, nil
}

func parseParameter(src *providers.Source, k sourceKeys) (*ref, error) {
	switch {
	case k.Recursive:
		return nil, fmt.Errorf("`recursive` applies to `path:` sources")
	case len(src.Keys) > 0 || len(src.Map) > 0:
		return nil, fmt.Errorf("a parameter is one plain value and has no fields; name its variable with `as:`, or read a hierarchy with `path:`")
	}
	name, selector := splitSelector(k.Parameter)
	if src.Version != "" {
		if selector != "" && selector != src.Version {
			return nil, fmt.Errorf("parameter %q names the version %q and `version` pins %q; give one", k.Parameter, selector, src.Version)
		}
		selector = src.Version
	}
	if !strings.HasPrefix(name, "arn:") && !validName(name) {
		return nil, fmt.Errorf("parameter %q: only letters, digits and _.-/ are allowed in a name", name)
	}
	if selector != "" && !validSelector(selector) {
		return nil, fmt.Errorf("version %q: a version number or a label (letters, digits and _.-)", selector)
	}
	return &ref{name: name, selector: selector}, nil
}

// splitSelector separates name:selector. Names cannot hold a colon, but an
// ARN does: its selector can only follow the ":parameter/..." part.
func splitSelector(s string) (name, selector string) {
	rest, start := s, 0
	if strings.HasPrefix(s, "arn:") {
		i := strings.Index(s, ":parameter/")
		if i < 0 {
			return s, ""
		}
		start = i + len(":parameter/")
		rest = s[start:]
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		return s[:start+i], rest[i+1:]
	}
	return s, ""
}

func isNumber(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
