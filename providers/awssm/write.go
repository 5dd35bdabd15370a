package awssm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/smithy-go"

	"github.com/secretrun/secretrun/providers"
)

// maxSecretSize is the most a secret's value may hold, as Secrets Manager
// documents it.
const maxSecretSize = 65536

var _ providers.Writer = (*provider)(nil)

// ImportSource is `secret: S`: one secret holding a JSON object, a field
// per key.
func (p *provider) ImportSource(dest providers.Destination, fields []string) ([]providers.SourceSetting, error) {
	switch {
	case dest.Path != "":
		return nil, fmt.Errorf("%s: Secrets Manager stores the variables as one JSON secret: name it with --secret (such as myapp/dev), not --path", p)
	case dest.Secret == "":
		return nil, fmt.Errorf("%s: name the secret to write with --secret, such as myapp/dev", p)
	}
	return []providers.SourceSetting{{Key: "secret", Value: dest.Secret}}, nil
}

func (p *provider) secretOf(src *providers.Source) (string, error) {
	r, ok := src.Ref.(*ref)
	if !ok || r.secret == "" || !r.current() {
		return "", fmt.Errorf("%s: source at %s does not name one secret at its current version", p, src.Pos)
	}
	return r.secret, nil
}

// Existing says whether the secret exists, scheduled for deletion or not.
func (p *provider) Existing(ctx context.Context, src *providers.Source, _ []string) ([]string, error) {
	name, err := p.secretOf(src)
	if err != nil {
		return nil, err
	}
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	out, err := c.sm.describeSecret(ctx, name)
	if err != nil {
		err = classify(ctx, err)
		if errors.Is(err, providers.ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: describe secret %s (%s): %w", p, name, c.where(), err)
	}
	if out.DeletedDate != nil {
		return []string{name + " (scheduled for deletion)"}, nil
	}
	return []string{name}, nil
}

// Write stores every value in one JSON object: CreateSecret, which AWS
// refuses when the secret exists, or with replace a new current version
// (PutSecretValue), the previous one kept as AWSPREVIOUS.
func (p *provider) Write(ctx context.Context, src *providers.Source, values []providers.NamedSecret, replace bool) ([]string, error) {
	name, err := p.secretOf(src)
	if err != nil {
		return nil, err
	}
	obj := make(map[string]string, len(values))
	names := make([]string, len(values))
	for i, v := range values {
		obj[v.Name] = v.Value.Reveal()
		names[i] = v.Name
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// Escaping <>& would change nothing a reader decodes, only the size.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return nil, fmt.Errorf("%s: encode secret %s: %w", p, name, err)
	}
	text := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if len(text) > maxSecretSize {
		return nil, fmt.Errorf("%s: secret %s would hold %d bytes of JSON; Secrets Manager takes at most %d: split the variables over several secrets", p, name, len(text), maxSecretSize)
	}
	c, err := p.client(ctx)
	if err != nil {
		return nil, err
	}
	body := string(text)
	if replace {
		err = c.sm.putSecretValue(ctx, name, body)
		if err == nil {
			return names, nil
		}
		if err := writeError(ctx, err); !errors.Is(err, providers.ErrNotFound) {
			return nil, fmt.Errorf("%s: put secret value %s (%s): %w", p, name, c.where(), err)
		}
	}
	err = c.sm.createSecret(ctx, name, body)
	var api smithy.APIError
	switch {
	case err == nil:
		return names, nil
	case errors.As(err, &api) && api.ErrorCode() == "ResourceExistsException":
		return nil, fmt.Errorf("%s: create secret %s (%s): %w", p, name, c.where(), providers.ErrExists)
	}
	return nil, fmt.Errorf("%s: create secret %s (%s): %w", p, name, c.where(), writeError(ctx, err))
}

// writeError classifies a failed write. AWS's text for a ValidationException
// quotes the member it refused, which may be the value, so it is left out.
func writeError(ctx context.Context, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "ValidationException" {
		return errors.New("ValidationException: Secrets Manager refused the secret (its message, which may quote the value, is left out)")
	}
	return classify(ctx, err)
}
