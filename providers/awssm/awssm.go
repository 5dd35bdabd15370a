// Package awssm reads secrets from AWS Secrets Manager: provider type
// `aws-secrets-manager`.
//
// Provider settings:
//
//	region:          default $AWS_REGION, $AWS_DEFAULT_REGION, then the profile's region
//	profile:         a profile of the shared config (~/.aws/config), including SSO profiles
//	endpoint:        another Secrets Manager endpoint; default $AWS_ENDPOINT_URL_SECRETS_MANAGER, $AWS_ENDPOINT_URL
//	assume_role_arn: a role to assume with the credentials found
//	external_id:     the external ID the role's trust policy requires
//	session_name:    the role session's name (default "secretrun")
//
// Credentials come from the AWS SDK's default chain: static keys in the
// environment, the shared config (profiles, SSO, credential_process), web
// identity (CI OIDC, EKS), container and instance metadata.
//
// Source keys (one of secret or secret_prefix):
//
//	secret:        a name or an ARN
//	version_stage: a staging label to read instead of AWSCURRENT
//	version_id:    a version id to read (`version:` means the same)
//	secret_prefix: every secret whose name starts with this, see below
//
// A secret holding a JSON object gives one field per key. Strings are taken
// as they are, numbers and booleans as their JSON text, null as an empty
// string, and nested objects and arrays as compact JSON text marked Nested
// (a variable only when mapped). A secret holding anything else is one plain
// value for `as:`; a binary secret is one plain value, base64-encoded
// (standard alphabet, padded), since environment variables cannot hold
// arbitrary bytes. With `as:` the whole text of the secret is the value, even
// if it is a JSON object.
//
// A secret_prefix source merges the secrets it finds in the order of their
// names: a JSON object contributes its keys, any other secret one field named
// by the rest of its name after the prefix (prod/app/ + DB_URL gives DB_URL).
// When two secrets give the same field, the later name wins, as later
// sources win over earlier ones. Finding no secret is ErrNotFound.
//
// Every secret a Fetch reads at its current version is fetched with
// BatchGetSecretValue, 20 names per call, several calls at a time; pinned
// versions are read one by one with GetSecretValue. Versions reads the
// staging labels with ListSecrets, ten names per call, so watching costs no
// value reads. ListSecrets is eventually consistent: AWS documents that it
// may lag by minutes, so a rotation can be noticed that much later.
package awssm

import (
	"fmt"
	"sync/atomic"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

// TypeName is the value of `type:` for this provider.
const TypeName = "aws-secrets-manager"

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
	sm     *api
	loaded awsconf.Loaded
	// noBatch is set once BatchGetSecretValue was refused as a whole: IAM
	// policies often grant GetSecretValue on a few ARNs and nothing else.
	noBatch atomic.Bool
	// noList is the same for ListSecrets, which Versions then replaces by
	// DescribeSecret per secret.
	noList atomic.Bool
}

func newProvider(name string, opts providers.Options, env providers.Env, h awsconf.Hooks) (*provider, error) {
	in, err := awsconf.NewInstance(opts, env, h)
	if err != nil {
		return nil, err
	}
	return &provider{name: name, Instance: in}, nil
}

// ref is what one source reads.
type ref struct {
	secret    string
	prefix    string
	stage     string
	versionID string
}

func (r *ref) String() string {
	if r.prefix != "" {
		return r.prefix
	}
	return r.secret
}

// current reports whether r reads AWSCURRENT, the version batches return.
func (r *ref) current() bool {
	return r.prefix == "" && r.versionID == "" && (r.stage == "" || r.stage == stageCurrent)
}

// describe names what r reads in messages.
func (r *ref) describe() string {
	switch {
	case r.prefix != "":
		return "secrets " + r.prefix + "*"
	case r.versionID != "":
		return r.secret + " version " + r.versionID
	case r.stage != "" && r.stage != stageCurrent:
		return r.secret + " stage " + r.stage
	}
	return r.secret
}

const (
	stageCurrent = "AWSCURRENT"
	stagePending = "AWSPENDING"
)

type sourceKeys struct {
	Secret       string `yaml:"secret"`
	SecretPrefix string `yaml:"secret_prefix"`
	VersionStage string `yaml:"version_stage"`
	VersionID    string `yaml:"version_id"`
}

// ParseSource reads `secret:` or `secret_prefix:` and the version pins.
func (p *provider) ParseSource(src *providers.Source, opts providers.Options) (providers.Ref, error) {
	var k sourceKeys
	if err := opts.Decode(&k); err != nil {
		return nil, err
	}
	r := &ref{secret: k.Secret, prefix: k.SecretPrefix, stage: k.VersionStage, versionID: k.VersionID}
	if src.Version != "" {
		if r.versionID != "" && r.versionID != src.Version {
			return nil, fmt.Errorf("`version` and `version_id` pin different versions; give one")
		}
		r.versionID = src.Version
	}
	switch {
	case r.secret == "" && r.prefix == "":
		return nil, fmt.Errorf("missing `secret:` (a name or ARN) or `secret_prefix:`")
	case r.secret != "" && r.prefix != "":
		return nil, fmt.Errorf("`secret` and `secret_prefix` exclude each other")
	case r.prefix != "" && (r.stage != "" || r.versionID != ""):
		return nil, fmt.Errorf("`secret_prefix` reads the current version of each secret; pin versions on `secret:` sources")
	case r.prefix != "" && src.As != "":
		return nil, fmt.Errorf("`secret_prefix` gives a field per key or secret; `as` names a single plain value")
	case r.stage != "" && r.versionID != "":
		return nil, fmt.Errorf("give one of `version_stage` and `version_id`")
	}
	return r, nil
}
