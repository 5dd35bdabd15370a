// Package keyring reads secrets from the OS keyring (macOS Keychain, Windows
// Credential Manager, the Secret Service on Linux), for local development.
// The keyring cannot list its items, so a source names every key it reads.
package keyring

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/secretrun/secretrun/providers"
)

// Type returns the `keyring` provider type.
func Type() providers.Type {
	return providers.Type{Name: "keyring", New: newProvider}
}

type settings struct {
	// Service groups an application's items in the keyring.
	Service string `yaml:"service"`
}

type provider struct {
	name    string
	service string
	keyring providers.Keyring
}

func newProvider(name string, opts providers.Options, env providers.Env) (providers.Provider, error) {
	var s settings
	if err := opts.Decode(&s); err != nil {
		return nil, err
	}
	if s.Service == "" {
		return nil, errors.New("missing `service:`, the keyring service that holds this application's items (for example its name)")
	}
	if env.Keyring == nil {
		return nil, errors.New("no OS keyring is available")
	}
	return &provider{name: name, service: s.Service, keyring: env.Keyring}, nil
}

// Service is the keyring service of a keyring provider instance, for
// `secretrun keyring set|get|delete`.
func Service(p providers.Provider) (string, bool) {
	kp, ok := p.(*provider)
	if !ok {
		return "", false
	}
	return kp.service, true
}

// ref names the items a source reads: the union of its keys and mapped
// fields, each one keyring item.
type ref struct {
	service string
	items   []string
}

func (r ref) String() string {
	if len(r.items) == 1 {
		return r.service + "/" + r.items[0]
	}
	return r.service + "/{" + strings.Join(r.items, ",") + "}"
}

func (p *provider) ParseSource(src *providers.Source, opts providers.Options) (providers.Ref, error) {
	var own struct{}
	if err := opts.Decode(&own); err != nil {
		return nil, err
	}
	r := ref{service: p.service}
	seen := map[string]bool{}
	add := func(item string) {
		if !seen[item] {
			seen[item] = true
			r.items = append(r.items, item)
		}
	}
	for _, k := range src.Keys {
		add(k)
	}
	for _, m := range src.Map {
		add(m.Field)
	}
	if len(r.items) == 0 {
		return nil, errors.New("a keyring source needs `keys:` (or `map:`) naming its items: the keyring cannot list them")
	}
	if src.As != "" {
		return nil, errors.New("`as` does not apply to the keyring: name the items with keys or map")
	}
	return r, nil
}

// batchGetter is implemented by keyrings that read many items of a service
// for about the cost of one (the Secret Service on Linux). Fetch uses it when
// the keyring has it and reads item by item otherwise.
type batchGetter interface {
	// GetMany returns the items of service named by keys that exist;
	// missing ones are absent from the map. Its error concerns the
	// keyring as a whole.
	GetMany(ctx context.Context, service string, keys []string) (map[string]providers.Secret, error)
}

// Fetch reads every item of every source, all at once when the keyring can
// read many items together.
func (p *provider) Fetch(ctx context.Context, sources []*providers.Source) ([]providers.Result, error) {
	if bg, ok := p.keyring.(batchGetter); ok {
		return p.fetchBatch(ctx, bg, sources), nil
	}
	return p.fetchEach(ctx, sources), nil
}

// fetchBatch reads every item of every source in one GetMany.
func (p *provider) fetchBatch(ctx context.Context, bg batchGetter, sources []*providers.Source) []providers.Result {
	results := make([]providers.Result, len(sources))
	if err := ctx.Err(); err != nil {
		for i := range results {
			results[i].Err = err
		}
		return results
	}
	var items []string
	seen := map[string]bool{}
	for _, src := range sources {
		for _, item := range src.Ref.(ref).items {
			if !seen[item] {
				seen[item] = true
				items = append(items, item)
			}
		}
	}
	got, err := bg.GetMany(ctx, p.service, items)
	for i, src := range sources {
		r := src.Ref.(ref)
		if err != nil {
			results[i].Err = fmt.Errorf("keyring %q: read %s: %w", p.name, r, err)
			continue
		}
		fields := make(map[string]providers.Field, len(r.items))
		for _, item := range r.items {
			v, ok := got[item]
			if !ok {
				results[i].Err = p.notFound(item)
				break
			}
			fields[item] = providers.Field{Value: v}
		}
		if results[i].Err == nil {
			results[i].Fields = fields
		}
	}
	return results
}

// fetchEach reads every item of every source concurrently: each read is a
// round trip to the keyring daemon, and they are independent.
func (p *provider) fetchEach(ctx context.Context, sources []*providers.Source) []providers.Result {
	results := make([]providers.Result, len(sources))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, src := range sources {
		r := src.Ref.(ref)
		results[i].Fields = make(map[string]providers.Field, len(r.items))
		for _, item := range r.items {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := ctx.Err(); err != nil {
					mu.Lock()
					results[i].Err = err
					mu.Unlock()
					return
				}
				v, err := p.keyring.Get(p.service, item)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, providers.ErrNotFound):
					if results[i].Err == nil {
						results[i].Err = p.notFound(item)
					}
				case err != nil:
					results[i].Err = fmt.Errorf("keyring %q: read %s/%s: %w", p.name, p.service, item, err)
				default:
					results[i].Fields[item] = providers.Field{Value: v}
				}
			}()
		}
	}
	wg.Wait()
	for i := range results {
		if results[i].Err != nil {
			results[i].Fields = nil
		}
	}
	return results
}

func (p *provider) notFound(item string) error {
	return fmt.Errorf("keyring %q: item %s/%s: %w; store it with `secretrun keyring set %s`", p.name, p.service, item, providers.ErrNotFound, item)
}
