package providers

import (
	"fmt"
	"io"
	"sort"
)

// Type is one kind of backend, such as `vault`.
type Type struct {
	// Name is the value of `type:` in the config.
	Name string
	// New builds a provider instance from its config block. name is the
	// instance's name in the config, for messages. It must not contact the
	// backend.
	New func(name string, opts Options, env Env) (Provider, error)
}

// Env is what a provider may take from its surroundings. Tests replace every
// part of it; nothing in a provider reads the process environment directly.
type Env struct {
	// Getenv reads secretrun's own environment (VAULT_ADDR, AWS_REGION, ...).
	Getenv func(string) string
	// Environ returns secretrun's own environment as os.Environ does, for
	// providers that start programs (exec); nil when not given.
	Environ func() []string
	// HomeDir is the user's home directory ("" when unknown).
	HomeDir string
	// Keyring holds credentials stored by `secretrun login`.
	Keyring Keyring
	// Stderr receives warnings, each a line starting "secretrun: warning:".
	Stderr io.Writer
}

// Warn prints a warning on Stderr.
func (e Env) Warn(format string, args ...any) {
	if e.Stderr != nil {
		fmt.Fprintf(e.Stderr, "secretrun: warning: "+format+"\n", args...)
	}
}

// Keyring stores small secrets under a service and a key, as the OS keyring
// does. Get returns an error wrapping ErrNotFound when there is none.
type Keyring interface {
	Get(service, key string) (Secret, error)
	Set(service, key string, value Secret) error
	Delete(service, key string) error
}

// Registry holds the backend types secretrun knows. main builds one with
// providers/all and passes it down; there is no global registry.
type Registry struct {
	types map[string]Type
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]Type{}} }

// Register adds a type. Registering a name twice is a programming error and
// panics.
func (r *Registry) Register(t Type) {
	if t.Name == "" || t.New == nil {
		panic("providers: Register needs a name and a constructor")
	}
	if _, dup := r.types[t.Name]; dup {
		panic("providers: type " + t.Name + " registered twice")
	}
	r.types[t.Name] = t
}

// Lookup returns the type with the given name.
func (r *Registry) Lookup(name string) (Type, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Names returns the registered type names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.types))
	for n := range r.types {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
