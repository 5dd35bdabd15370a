package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/secretrun/secretrun/providers"
)

var _ providers.Writer = (*provider)(nil)

// ImportSource is `path: P`: every field of one KV secret, v1 or v2, as
// `vault kv put P` writes it.
func (p *provider) ImportSource(dest providers.Destination, fields []string) ([]providers.SourceSetting, error) {
	switch {
	case dest.Secret != "":
		return nil, fmt.Errorf("vault %q: Vault stores the variables as one KV secret: give its --path (such as secret/myapp), not --secret", p.name)
	case strings.Trim(dest.Path, "/") == "":
		return nil, fmt.Errorf("vault %q: give the KV secret to write with --path, such as secret/myapp", p.name)
	}
	return []providers.SourceSetting{{Key: "path", Value: strings.Trim(dest.Path, "/")}}, nil
}

// kvMount finds the KV mount of path, refusing any other engine: leased
// and dynamic secrets cannot be written.
func (p *provider) kvMount(ctx context.Context, c *client, path string) (mountInfo, string, error) {
	m, err := p.mount(ctx, c, path, nil)
	if err != nil {
		return m, "", err
	}
	if m.kv == 0 {
		return m, "", fmt.Errorf("vault %q: write %s: this is under the %s, not a KV mount; import writes KV secrets (a KV v2 mount is at secret/ on most servers)", p.name, path, m)
	}
	rel, err := p.relative(path, m)
	return m, rel, err
}

// Existing says whether the secret exists. On KV v2 its metadata decides:
// a secret whose latest version was deleted still has a current version,
// which a new write would follow.
func (p *provider) Existing(ctx context.Context, src *providers.Source, _ []string) ([]string, error) {
	c, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	path := src.Ref.String()
	m, rel, err := p.kvMount(ctx, c, path)
	if err != nil {
		return nil, err
	}
	if m.kv == 2 {
		if err := p.acquire(ctx); err != nil {
			return nil, err
		}
		s, err := c.read(ctx, m.path+"metadata/"+rel, nil)
		p.release()
		switch {
		case err == nil && s == nil:
			return nil, nil
		case err == nil:
			return []string{fmt.Sprintf("%s (%s, version %s)", path, m, jsonText(s.Data["current_version"]))}, nil
		case statusOf(err) != 403:
			return nil, p.describe(ctx, "read the metadata of "+path, err)
		}
		// A policy may grant data/ but not metadata/: read the data.
	}
	_, err = p.read(ctx, c, path, "")
	switch {
	case err == nil:
		return []string{fmt.Sprintf("%s (%s)", path, m)}, nil
	case errors.Is(err, providers.ErrNotFound):
		return nil, nil
	}
	return nil, err
}

// Write stores every value as one KV secret, replacing the whole secret as
// `vault kv put` does. On KV v2 without replace it sets cas=0, so Vault
// itself refuses when the secret appeared since Existing looked.
func (p *provider) Write(ctx context.Context, src *providers.Source, values []providers.NamedSecret, replace bool) ([]string, error) {
	c, err := p.ready(ctx)
	if err != nil {
		return nil, err
	}
	path := src.Ref.String()
	m, rel, err := p.kvMount(ctx, c, path)
	if err != nil {
		return nil, err
	}
	data := make(map[string]any, len(values))
	names := make([]string, len(values))
	for i, v := range values {
		data[v.Name] = v.Value.Reveal()
		names[i] = v.Name
	}
	target, body := path, data
	if m.kv == 2 {
		target = m.path + "data/" + rel
		body = map[string]any{"data": data}
		if !replace {
			body["options"] = map[string]any{"cas": 0}
		}
	}
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	_, err = c.write(ctx, target, body)
	p.release()
	if err != nil {
		if statusOf(err) == 400 && strings.Contains(vaultSays(err), "check-and-set") {
			return nil, fmt.Errorf("vault %q: write %s: %w (%s)", p.name, path, providers.ErrExists, m)
		}
		return nil, p.describe(ctx, "write "+path, err)
	}
	return names, nil
}
