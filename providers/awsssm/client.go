package awsssm

import (
	"context"
	"fmt"
	"strings"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/internal/awsconf"
)

// client returns the instance's one client, building it on first use.
// A failed build is not remembered, so a later call can succeed.
func (p *provider) client(ctx context.Context) (*conn, error) {
	return p.conn.Get(func() (*conn, error) {
		l, err := p.Load(ctx, p.String(), "AWS_ENDPOINT_URL_SSM")
		if err != nil {
			return nil, err
		}
		a, err := newAPI(l.Config, l.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return &conn{ssm: a, loaded: l}, nil
	})
}

// parameter is one version of a parameter as Parameter Store sends it;
// the fields the provider has no use for are left out.
type parameter struct {
	Name    string
	ARN     string
	Value   string
	Version int64
}

func (a *api) getParameters(ctx context.Context, names []string, decrypt bool) (found []parameter, invalid []string, err error) {
	var out struct {
		Parameters        []parameter
		InvalidParameters []string
	}
	err = a.Call(ctx, "GetParameters", struct {
		Names          []string
		WithDecryption bool
	}{names, decrypt}, &out)
	return out.Parameters, out.InvalidParameters, err
}

func (a *api) getParameter(ctx context.Context, name string, decrypt bool) (*parameter, error) {
	var out struct{ Parameter *parameter }
	err := a.Call(ctx, "GetParameter", struct {
		Name           string
		WithDecryption bool
	}{name, decrypt}, &out)
	return out.Parameter, err
}

// getParametersByPath reads every page below path, as the SDK's paginator
// does: until a page comes without a NextToken.
func (a *api) getParametersByPath(ctx context.Context, path string, recursive, decrypt bool, pageSize int32) ([]parameter, error) {
	var all []parameter
	next := ""
	for {
		var out struct {
			Parameters []parameter
			NextToken  string
		}
		err := a.Call(ctx, "GetParametersByPath", struct {
			Path           string
			Recursive      bool
			WithDecryption bool
			MaxResults     int32
			NextToken      string `json:",omitempty"`
		}{path, recursive, decrypt, pageSize, next}, &out)
		if err != nil {
			return nil, err
		}
		all = append(all, out.Parameters...)
		if out.NextToken == "" {
			return all, nil
		}
		next = out.NextToken
	}
}

// putSecureString stores value as a new Standard-tier SecureString
// version of name, replacing the current one only with overwrite.
func (a *api) putSecureString(ctx context.Context, name string, value string, overwrite bool) error {
	var out struct{}
	return a.Call(ctx, "PutParameter", struct {
		Name      string
		Value     string
		Type      string
		Tier      string
		Overwrite bool
	}{name, value, "SecureString", "Standard", overwrite}, &out)
}

// where names the region, and the endpoint when it is not AWS's own.
func (c *conn) where() string { return c.loaded.Where() }

// ssmCodes maps the error codes of Parameter Store's own; awsconf maps
// those every AWS service shares. AWS's messages name the parameter or the
// caller, never a value.
func ssmCodes(code, detail string) error {
	msg := code
	if detail != "" {
		msg += ": " + detail
	}
	switch code {
	case "ParameterNotFound", "ParameterVersionNotFound":
		return fmt.Errorf("%w (%s)", providers.ErrNotFound, msg)
	case "InvalidKeyId":
		return fmt.Errorf("%w: KMS could not decrypt the SecureString; the caller needs kms:Decrypt on its key, and the key must be enabled (%s)", providers.ErrDenied, msg)
	case "AccessDeniedException":
		if strings.Contains(strings.ToLower(detail), "kms") {
			return fmt.Errorf("%w: KMS refused to decrypt the SecureString; the caller needs kms:Decrypt on its key (%s)", providers.ErrDenied, msg)
		}
	}
	return nil
}

// classify turns an error of an SDK call into one that wraps the right
// sentinel.
func classify(ctx context.Context, err error) error { return awsconf.Classify(ctx, err, ssmCodes) }

func wholeBackend(err error) bool { return awsconf.WholeBackend(err) }
