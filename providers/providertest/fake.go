// Package providertest holds what provider tests share: the conformance
// suite every provider passes, an in-memory fake provider and an in-memory
// keyring.
package providertest

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"

	"github.com/secretrun/secretrun/providers"
)

// Fake is an in-memory backend. Its provider type is "fake"; a source reads
// `path: NAME`. Tests change its contents while secretrun runs, make it fail,
// and count its calls.
type Fake struct {
	mu       sync.Mutex
	secrets  map[string]fakeSecret
	down     error
	fetches  int
	versions int
}

type fakeSecret struct {
	fields  map[string]string
	version int
}

// NewFake returns an empty fake backend.
func NewFake() *Fake { return &Fake{secrets: map[string]fakeSecret{}} }

// Type is the provider type to register; every instance shares this store.
func (f *Fake) Type() providers.Type {
	return providers.Type{Name: "fake", New: func(name string, opts providers.Options, _ providers.Env) (providers.Provider, error) {
		var settings struct{}
		if err := opts.Decode(&settings); err != nil {
			return nil, err
		}
		return &fakeProvider{store: f, name: name}, nil
	}}
}

// Set stores a secret; a single field named providers.Plain makes it plain.
func (f *Fake) Set(path string, fields map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions++
	f.secrets[path] = fakeSecret{fields: maps.Clone(fields), version: f.versions}
}

// Delete removes a secret.
func (f *Fake) Delete(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.secrets, path)
}

// SetDown makes every call fail with err (wrapped in ErrUnavailable), or
// succeed again when err is nil.
func (f *Fake) SetDown(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = err
}

// Fetches counts the Fetch calls made so far.
func (f *Fake) Fetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches
}

type fakeProvider struct {
	store *Fake
	name  string
}

type fakeRef string

func (r fakeRef) String() string { return string(r) }

func (p *fakeProvider) ParseSource(src *providers.Source, opts providers.Options) (providers.Ref, error) {
	var s struct {
		Path string `yaml:"path"`
	}
	if err := opts.Decode(&s); err != nil {
		return nil, err
	}
	if s.Path == "" {
		return nil, fmt.Errorf("missing `path:`")
	}
	return fakeRef(s.Path), nil
}

func (p *fakeProvider) Fetch(ctx context.Context, sources []*providers.Source) ([]providers.Result, error) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.fetches++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.store.down != nil {
		return nil, fmt.Errorf("fake %q: %w: %w", p.name, providers.ErrUnavailable, p.store.down)
	}
	results := make([]providers.Result, len(sources))
	for i, src := range sources {
		s, ok := p.store.secrets[src.Ref.String()]
		if !ok {
			results[i].Err = fmt.Errorf("fake %q: read %s: %w", p.name, src.Ref, providers.ErrNotFound)
			continue
		}
		results[i].Fields = map[string]providers.Field{}
		for k, v := range s.fields {
			results[i].Fields[k] = providers.Field{Value: providers.NewSecret(v)}
		}
		results[i].Version = strconv.Itoa(s.version)
	}
	return results, nil
}

// Versions reports a counter that changes on every Set.
func (p *fakeProvider) Versions(ctx context.Context, sources []*providers.Source) ([]string, error) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	if p.store.down != nil {
		return nil, fmt.Errorf("fake %q: %w: %w", p.name, providers.ErrUnavailable, p.store.down)
	}
	out := make([]string, len(sources))
	for i, src := range sources {
		if s, ok := p.store.secrets[src.Ref.String()]; ok {
			out[i] = strconv.Itoa(s.version)
		}
	}
	return out, nil
}

// Keyring is an in-memory providers.Keyring.
type Keyring struct {
	mu    sync.Mutex
	items map[[2]string]string
}

// NewKeyring returns an empty keyring.
func NewKeyring() *Keyring { return &Keyring{items: map[[2]string]string{}} }

// Get returns the item, or an error wrapping providers.ErrNotFound.
func (k *Keyring) Get(service, key string) (providers.Secret, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.items[[2]string{service, key}]
	if !ok {
		return providers.Secret{}, fmt.Errorf("keyring item %s/%s: %w", service, key, providers.ErrNotFound)
	}
	return providers.NewSecret(v), nil
}

// Set stores the item.
func (k *Keyring) Set(service, key string, value providers.Secret) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.items[[2]string{service, key}] = value.Reveal()
	return nil
}

// Delete removes the item, or returns an error wrapping providers.ErrNotFound.
func (k *Keyring) Delete(service, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.items[[2]string{service, key}]; !ok {
		return fmt.Errorf("keyring item %s/%s: %w", service, key, providers.ErrNotFound)
	}
	delete(k.items, [2]string{service, key})
	return nil
}
