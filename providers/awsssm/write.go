package awsssm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/smithy-go"

	"github.com/secretrun/secretrun/providers"
)

// maxStandardValue is the most a Standard-tier parameter holds, as
// Parameter Store documents it; Advanced parameters cost money, so import
// does not create them.
const maxStandardValue = 4096

var _ providers.Writer = (*provider)(nil)

// ImportSource is `path: P`: one SecureString parameter per field, named
// P/FIELD.
func (p *provider) ImportSource(dest providers.Destination, fields []string) ([]providers.SourceSetting, error) {
	switch {
	case dest.Secret != "":
		return nil, fmt.Errorf("%s: Parameter Store stores one parameter per variable below a hierarchy: give it with --path (such as /myapp/dev), not --secret", p)
	case dest.Path == "":
		return nil, fmt.Errorf("%s: give the hierarchy to write below with --path, such as /myapp/dev", p)
	}
	return []providers.SourceSetting{{Key: "path", Value: dest.Path}}, nil
}

// parameterNames are the names that Write gives fields below src's path.
func (p *provider) parameterNames(src *providers.Source, fields []string) ([]string, error) {
	r, ok := src.Ref.(*ref)
	if !ok || r.path == "" || r.recursive {
		return nil, fmt.Errorf("%s: source at %s is not a non-recursive `path:` source", p, src.Pos)
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = strings.TrimSuffix(r.path, "/") + "/" + f
	}
	return names, nil
}

// Existing lists the parameters among the fields' names that exist.
func (p *provider) Existing(ctx context.Context, src *providers.Source, fields []string) ([]string, error) {
	names, err := p.parameterNames(src, fields)
	if err != nil {
		return nil, err
	}
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	reads, err := p.readAll(ctx, c, names, false)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, n := range names {
		switch rd := reads[n]; {
		case rd.err == nil && rd.p != nil:
			found = append(found, n)
		case rd.err != nil && !errors.Is(rd.err, providers.ErrNotFound):
			return nil, fmt.Errorf("%s: get parameter %s (%s): %w", p, n, c.where(), rd.err)
		}
	}
	return found, nil
}

// Write puts one SecureString per value, one after the other: Parameter
// Store's default quota for PutParameter is a few calls a second, and in
// order a failure leaves a plain list of what was stored. Without replace,
// Parameter Store itself refuses a name that exists.
func (p *provider) Write(ctx context.Context, src *providers.Source, values []providers.NamedSecret, replace bool) ([]string, error) {
	fields := make([]string, len(values))
	for i, v := range values {
		fields[i] = v.Name
		switch {
		case v.Value.Len() == 0:
			return nil, fmt.Errorf("%s: %s is empty, and a parameter cannot be: leave it out of the file, or give it a value", p, v.Name)
		case v.Value.Len() > maxStandardValue:
			return nil, fmt.Errorf("%s: %s holds %d bytes, more than the %d of a Standard parameter: keep it in Secrets Manager (aws-secrets-manager) instead", p, v.Name, v.Value.Len(), maxStandardValue)
		}
	}
	names, err := p.parameterNames(src, fields)
	if err != nil {
		return nil, err
	}
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	var written []string
	for i, v := range values {
		err := c.ssm.putSecureString(ctx, names[i], v.Value.Reveal(), replace)
		var api smithy.APIError
		switch {
		case err == nil:
			written = append(written, v.Name)
			continue
		case errors.As(err, &api) && api.ErrorCode() == "ParameterAlreadyExists":
			err = providers.ErrExists
		case errors.As(err, &api) && api.ErrorCode() == "ValidationException":
			// AWS's text quotes the member it refused, which may be the value.
			err = errors.New("ValidationException: Parameter Store refused the parameter (its message, which may quote the value, is left out)")
		default:
			err = classify(ctx, err)
		}
		return written, fmt.Errorf("%s: put parameter %s (%s): %w", p, names[i], c.where(), err)
	}
	return written, nil
}
