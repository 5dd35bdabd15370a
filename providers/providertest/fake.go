// Package providertest holds what provider tests share: the conformance
// suite every provider passes, an in-memory fake provider and an in-memory
// keyring.
package providertest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/secretrun/secretrun/providers"
)

// Fake is an in-memory backend. Its provider type is "fake"; a source reads
// `path: NAME`. Tests change its contents while secretrun runs, make it
// fail or hang, lease its secrets, and see when it was called.
type Fake struct {
	mu       sync.Mutex
	secrets  map[string]fakeSecret
	down     error
	hang     bool
	versions int
	// fetchesAt, versionsAt and renewsAt record when each call was made.
	fetchesAt, versionsAt, renewsAt []time.Time
	leases                          map[string]*fakeLease
}

type fakeSecret struct {
	fields  map[string]string
	version int
}

// fakeLease makes a path's values leased credentials: each read hands out
// a new generation of them (the values get "#N" appended), valid for ttl
// and renewable until maxEnd of the generation.
type fakeLease struct {
	ttl, maxTTL time.Duration
	gen         int
	expires     time.Time
	renewAt     time.Time
	maxEnd      time.Time
	// stale marks a generation that cannot be renewed any further: the
	// next Fetch hands out a new one.
	stale bool
	held  bool
}

// NewFake returns an empty fake backend.
func NewFake() *Fake { return &Fake{secrets: map[string]fakeSecret{}, leases: map[string]*fakeLease{}} }

// Type is the provider type to register; every instance shares this store.
func (f *Fake) Type() providers.Type {
	return providers.Type{Name: "fake", New: func(name string, opts providers.Options, _ providers.Env) (providers.Provider, error) {
		var settings struct{}
		if err := opts.Decode(&settings); err != nil {
			return nil, err
		}
		return f.Provider(name), nil
	}}
}

// Provider returns an instance named name that reports versions cheaply
// (providers.Versioner) and renews leases (providers.Holder).
func (f *Fake) Provider(name string) providers.Provider {
	return &fakeVersioned{fakeProvider{store: f, name: name}}
}

// Unversioned returns an instance without Versions, which a watch must
// fetch and compare.
func (f *Fake) Unversioned(name string) providers.Provider {
	return &fakeProvider{store: f, name: name}
}

// Set stores a secret; a single field named providers.Plain makes it plain.
func (f *Fake) Set(path string, fields map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions++
	f.secrets[path] = fakeSecret{fields: maps.Clone(fields), version: f.versions}
}

// Touch makes a new version of a secret with the same values.
func (f *Fake) Touch(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions++
	s := f.secrets[path]
	s.version = f.versions
	f.secrets[path] = s
}

// Delete removes a secret.
func (f *Fake) Delete(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.secrets, path)
}

// Lease makes path's values leased credentials that last ttl from each
// read or renewal, and at most maxTTL from their read.
func (f *Fake) Lease(path string, ttl, maxTTL time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leases[path] = &fakeLease{ttl: ttl, maxTTL: maxTTL}
}

// SetDown makes every call fail with err (wrapped in ErrUnavailable), or
// succeed again when err is nil.
func (f *Fake) SetDown(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = err
}

// SetHang makes every call block until its context ends, as a backend that
// accepts connections and never answers; false makes calls answer again.
func (f *Fake) SetHang(hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hang = hang
}

// Fetches counts the Fetch calls made so far.
func (f *Fake) Fetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.fetchesAt)
}

// Calls returns when each Versions and Fetch call was made.
func (f *Fake) Calls() (versions, fetches []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.versionsAt), slices.Clone(f.fetchesAt)
}

// Renews returns when each Renew call that had something to renew was made.
func (f *Fake) Renews() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.renewsAt)
}

// LeaseExpires returns when the current generation of path's lease ends.
func (f *Fake) LeaseExpires(path string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l := f.leases[path]; l != nil {
		return l.expires
	}
	return time.Time{}
}

// enter records a call and applies an outage: with the lock held on
// return, or an error (after the context ended, for a hang).
func (f *Fake) enter(ctx context.Context, name string, calls *[]time.Time) error {
	f.mu.Lock()
	*calls = append(*calls, time.Now())
	if f.hang {
		f.mu.Unlock()
		<-ctx.Done()
		return fmt.Errorf("fake %q: %w: %w", name, providers.ErrUnavailable, ctx.Err())
	}
	if err := ctx.Err(); err != nil {
		f.mu.Unlock()
		return err
	}
	if f.down != nil {
		err := f.down
		f.mu.Unlock()
		return fmt.Errorf("fake %q: %w: %w", name, providers.ErrUnavailable, err)
	}
	return nil
}

type fakeProvider struct {
	store *Fake
	name  string
}

// fakeVersioned adds the optional capabilities.
type fakeVersioned struct{ fakeProvider }

func (p *fakeProvider) String() string { return fmt.Sprintf("fake %q", p.name) }

type fakeRef string

func (r fakeRef) String() string { return string(r) }

// Ref returns what a source of the fake reads, for tests that build
// sources without a config file.
func Ref(path string) providers.Ref { return fakeRef(path) }

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
	f := p.store
	if err := f.enter(ctx, p.name, &f.fetchesAt); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	now := time.Now()
	results := make([]providers.Result, len(sources))
	for i, src := range sources {
		s, ok := f.secrets[src.Ref.String()]
		if !ok {
			results[i].Err = fmt.Errorf("fake %q: read %s: %w", p.name, src.Ref, providers.ErrNotFound)
			continue
		}
		suffix := ""
		if l := f.leases[src.Ref.String()]; l != nil {
			if l.gen == 0 || l.stale || !now.Before(l.expires) {
				l.gen++
				l.stale, l.held = false, true
				l.expires, l.renewAt, l.maxEnd = now.Add(l.ttl), now.Add(l.ttl*2/3), now.Add(l.maxTTL)
			}
			suffix = "#" + strconv.Itoa(l.gen)
			results[i].Expires = l.expires
		}
		results[i].Fields = map[string]providers.Field{}
		for k, v := range s.fields {
			results[i].Fields[k] = providers.Field{Value: providers.NewSecret(v + suffix)}
		}
		results[i].Version = strconv.Itoa(s.version)
	}
	return results, nil
}

// Versions reports a counter that changes on every Set, and a new lease
// generation once the current one cannot be renewed.
func (p *fakeVersioned) Versions(ctx context.Context, sources []*providers.Source) ([]string, error) {
	f := p.store
	if err := f.enter(ctx, p.name, &f.versionsAt); err != nil {
		return nil, err
	}
	defer f.mu.Unlock()
	out := make([]string, len(sources))
	for i, src := range sources {
		if s, ok := f.secrets[src.Ref.String()]; ok {
			out[i] = strconv.Itoa(s.version)
			if l := f.leases[src.Ref.String()]; l != nil {
				gen := l.gen
				if l.stale {
					gen++
				}
				out[i] += "-lease-" + strconv.Itoa(gen)
			}
		}
	}
	return out, nil
}

// HoldsLeases reports whether a leased secret has been read.
func (p *fakeVersioned) HoldsLeases() bool {
	f := p.store
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.leases {
		if l.held {
			return true
		}
	}
	return false
}

// Renew extends every lease past two thirds of its TTL, up to its max TTL;
// a lease that cannot last another TTL is reported as expiring.
func (p *fakeVersioned) Renew(ctx context.Context) (providers.Renewal, error) {
	f := p.store
	f.mu.Lock()
	now := time.Now()
	due := false
	for _, l := range f.leases {
		if l.held && !l.stale && !now.Before(l.renewAt) {
			due = true
		}
	}
	f.mu.Unlock()
	var r providers.Renewal
	if due {
		if err := f.enter(ctx, p.name, &f.renewsAt); err != nil {
			return r, err
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, path := range slices.Sorted(maps.Keys(f.leases)) {
		l := f.leases[path]
		if !l.held {
			continue
		}
		if !l.stale && !now.Before(l.renewAt) {
			if now.Add(l.ttl).After(l.maxEnd) {
				l.stale = true
			} else {
				l.expires, l.renewAt = now.Add(l.ttl), now.Add(l.ttl*2/3)
			}
		}
		if l.stale {
			r.Expiring = append(r.Expiring, providers.Expiring{Ref: path, Expires: l.expires})
			continue
		}
		if r.Next.IsZero() || l.renewAt.Before(r.Next) {
			r.Next = l.renewAt
		}
	}
	return r, nil
}

// Close gives every lease back.
func (p *fakeVersioned) Close(context.Context) error {
	f := p.store
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.leases {
		l.held = false
	}
	return nil
}

var (
	_ providers.Versioner = (*fakeVersioned)(nil)
	_ providers.Holder    = (*fakeVersioned)(nil)
)

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
