package awsconf

import (
	"context"
	"sync"

	"github.com/secretrun/secretrun/providers"
)

// Instance is what every AWS provider instance is made of, whatever its
// service: the block's settings, the environment they are read with, and
// the tests' hooks.
type Instance struct {
	Settings Settings
	Env      providers.Env
	Hooks    Hooks
}

// NewInstance decodes and checks a provider block, so that a block moved
// from one AWS service to another is judged the same way.
func NewInstance(opts providers.Options, env providers.Env, hooks Hooks) (Instance, error) {
	var s Settings
	if err := opts.Decode(&s); err != nil {
		return Instance{}, err
	}
	if err := s.Check(); err != nil {
		return Instance{}, err
	}
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	return Instance{Settings: s, Env: env, Hooks: hooks}, nil
}

// Load loads the SDK configuration of the instance; who names it in
// messages, endpointVariable is the service's own endpoint override.
func (in Instance) Load(ctx context.Context, who, endpointVariable string) (Loaded, error) {
	return Load(ctx, Request{
		Who:              who,
		Settings:         in.Settings,
		Env:              in.Env,
		EndpointVariable: endpointVariable,
		Hooks:            in.Hooks,
	})
}

// Lazy holds a value built on first use and shared by every later call.
// A failed build is not remembered, so a later call can succeed.
type Lazy[T any] struct {
	mu sync.Mutex
	v  *T
}

// Get returns the value, building it with build if there is none yet.
func (l *Lazy[T]) Get(build func() (*T, error)) (*T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.v != nil {
		return l.v, nil
	}
	v, err := build()
	if err != nil {
		return nil, err
	}
	l.v = v
	return v, nil
}

// Peek returns the value if it was built, nil otherwise.
func (l *Lazy[T]) Peek() *T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.v
}
