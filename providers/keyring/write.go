package keyring

import (
	"context"
	"errors"
	"fmt"

	"github.com/secretrun/secretrun/providers"
)

var _ providers.Writer = (*provider)(nil)

// ImportSource is `keys: [...]`: one keyring item per field, in the
// provider's service.
func (p *provider) ImportSource(dest providers.Destination, fields []string) ([]providers.SourceSetting, error) {
	if dest.Path != "" || dest.Secret != "" {
		return nil, fmt.Errorf("keyring %q: the keyring stores one item per variable in service %q; it takes no --path or --secret", p.name, p.service)
	}
	return []providers.SourceSetting{{Key: "keys", Value: fields}}, nil
}

// Existing lists the items among fields that the service already holds.
func (p *provider) Existing(ctx context.Context, src *providers.Source, fields []string) ([]string, error) {
	var found []string
	if bg, ok := p.keyring.(batchGetter); ok {
		got, err := bg.GetMany(ctx, p.service, fields)
		if err != nil {
			return nil, fmt.Errorf("keyring %q: read %s: %w", p.name, p.service, err)
		}
		for _, f := range fields {
			if _, ok := got[f]; ok {
				found = append(found, p.service+"/"+f)
			}
		}
		return found, nil
	}
	for _, f := range fields {
		_, err := p.keyring.Get(p.service, f)
		switch {
		case err == nil:
			found = append(found, p.service+"/"+f)
		case !errors.Is(err, providers.ErrNotFound):
			return nil, fmt.Errorf("keyring %q: read %s/%s: %w", p.name, p.service, f, err)
		}
	}
	return found, nil
}

// Write stores one item per value, one after the other. The keyring cannot
// refuse to replace an item by itself, so without replace an item that
// exists when its turn comes stops the write there.
func (p *provider) Write(ctx context.Context, src *providers.Source, values []providers.NamedSecret, replace bool) ([]string, error) {
	var written []string
	for _, v := range values {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		if !replace {
			_, err := p.keyring.Get(p.service, v.Name)
			if err == nil {
				return written, fmt.Errorf("keyring %q: item %s/%s: %w", p.name, p.service, v.Name, providers.ErrExists)
			}
			if !errors.Is(err, providers.ErrNotFound) {
				return written, fmt.Errorf("keyring %q: read %s/%s: %w", p.name, p.service, v.Name, err)
			}
		}
		if err := p.keyring.Set(p.service, v.Name, v.Value); err != nil {
			return written, fmt.Errorf("keyring %q: store %s/%s: %w", p.name, p.service, v.Name, err)
		}
		written = append(written, v.Name)
	}
	return written, nil
}
