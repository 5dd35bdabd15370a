// Package providers defines what a secret backend must do for secretrun: the
// Provider interface, the registry of backend types, the redacting Secret
// type and the errors that providers wrap. Each backend lives in a package of
// its own below this one; providers/all lists them.
package providers

import (
	"context"
	"time"
)

// Provider is one configured backend instance, such as the `vault` entry
// under `providers:` in secretrun.yaml.
//
// A provider must not contact its backend before the first Fetch: building
// one validates configuration only, so `secretrun check --offline` and config
// errors never wait on the network.
type Provider interface {
	// ParseSource decodes and validates the provider-specific keys of one
	// source (`path`, `secret`, ...); the common keys are already in src. It
	// returns what the source reads, for Fetch and for messages.
	ParseSource(src *Source, opts Options) (Ref, error)

	// Fetch reads sources, all of which belong to this provider, and returns
	// one Result per source, in order. A failure that concerns one source
	// (not found, denied) goes in that Result's Err; a failure of the whole
	// backend (unreachable, authentication) is the returned error.
	Fetch(ctx context.Context, sources []*Source) ([]Result, error)
}

// Ref is a provider's parsed description of what a source reads. Its String
// is the path or name a user wrote, used in messages and origins.
type Ref interface {
	String() string
}

// Source is one entry of an environment in the config file: which provider
// instance to read, what to read from it, and how the fields it returns
// become variables.
type Source struct {
	// Provider is the name of the provider instance in the config.
	Provider string
	// Environment is the secretrun environment being run (--env), for
	// backends that have environments of their own and default to it.
	Environment string
	// Ref is what the provider reads; set by ParseSource.
	Ref Ref
	// Keys selects fields by name; empty selects every field.
	Keys []string
	// Map selects fields and names their variables; in the config's order.
	Map []Rename
	// Prefix is put before variable names derived from field names.
	Prefix string
	// As names the variable for a plain (unnamed) secret value.
	As string
	// Optional makes a missing secret an empty result instead of an error.
	Optional bool
	// Version pins one version of the secret; its meaning is the provider's.
	Version string
	// Files selects fields that become memory-only files instead of
	// variables (`files:`): Var holds the file's path. Field Plain is a
	// plain secret's one value.
	Files []Rename
	// NoEnv keeps the source's variables out of the child's environment
	// (`env: false`): they are there for templates only.
	NoEnv bool
	// Pos is where the source is written: "secretrun.yaml:12:7".
	Pos string
}

// Rename is one `map:` entry: the variable Var takes the value of Field.
type Rename struct {
	Var   string
	Field string
}

// Plain is the field name of a secret that is one unnamed value, such as a
// plain-string AWS secret or a keyring item read as a whole; `as:` names it.
const Plain = ""

// Result is what a provider read for one source.
type Result struct {
	// Fields holds the secret's fields by name; a plain value is at Plain.
	Fields map[string]Field
	// Version labels the version that was read ("3", an AWS version id),
	// for messages; empty when the backend has no versions.
	Version string
	// Expires is when the values stop being valid (a lease); zero if never.
	Expires time.Time
	// Err is the reason this source could not be read.
	Err error
}

// Field is one value of a secret.
type Field struct {
	Value Secret
	// Nested marks an object or array, rendered as JSON text: it becomes a
	// variable only when a source maps it explicitly.
	Nested bool
}

// Options is a block of provider-specific settings from the config file.
type Options interface {
	// Decode decodes the block into v, a pointer to a struct with yaml tags.
	// Unknown keys and wrong types are errors that name file:line:col.
	Decode(v any) error
	// Pos is where the block is written: "secretrun.yaml:12:7".
	Pos() string
}

// Closer is implemented by providers that hold something to give back when
// secretrun exits, such as Vault leases to revoke or a token the provider
// logged in for. Close is called once, after the child has exited or, when
// secretrun replaces itself with the child, just before it does.
type Closer interface {
	Close(ctx context.Context) error
}

// Holder is implemented by providers that hold credentials with a lifetime
// after a Fetch: Vault leases, a token the provider logged in for. The run
// engine renews them on the provider's schedule for as long as the child
// runs, with or without watch, and calls Close when the child has exited.
type Holder interface {
	Closer
	// HoldsLeases reports whether the child itself uses something held
	// (leased credentials), so that secretrun must stay its parent to renew
	// it or give it back on exit. What only the provider uses, such as its
	// login token, does not count: Close gives it back before an exec.
	HoldsLeases() bool
	// Renew renews whatever is due and says when to call it again. It does
	// no network request when nothing is due, so it may be called early.
	// An error is an outage: nothing was given up, the caller retries.
	Renew(ctx context.Context) (Renewal, error)
}

// Renewal is what a Renew call left behind.
type Renewal struct {
	// Next is when Renew wants to be called again; zero when nothing held
	// needs renewing.
	Next time.Time
	// Expiring lists the held credentials that cannot be renewed far enough
	// (a max TTL, a refused renewal): a Fetch of their source now returns
	// new ones, and until the child gets those it uses the old ones, which
	// end at Expires.
	Expiring []Expiring
}

// Expiring is one held credential that cannot be kept alive.
type Expiring struct {
	// Ref is what the source reads, as Ref.String() gives it.
	Ref string
	// Expires is when the credential ends.
	Expires time.Time
}

// Versioner is implemented by providers that can tell cheaply whether
// sources have changed, without reading their values (Vault KV metadata,
// Secrets Manager version stages, Infisical ETags). The watch loop compares
// fetched values for providers that do not implement it.
type Versioner interface {
	// Versions returns one label per source that changes whenever the
	// source's values change. An empty label means the provider cannot tell
	// for that source (a Vault KV v1 mount): the watch loop then fetches it
	// and compares values. It is a query: it renews nothing (see Holder),
	// but a leased credential that Renew marked as expiring gets a new
	// label, the one the next Fetch carries.
	Versions(ctx context.Context, sources []*Source) ([]string, error)
}

// Loginer is implemented by providers whose credentials `secretrun login`
// can obtain and keep in the OS keyring, so no credential file is written.
type Loginer interface {
	// Login asks for credentials through p, verifies them against the
	// backend and stores what should last in the keyring.
	Login(ctx context.Context, p Prompter) error
	// Logout removes what Login stored.
	Logout(ctx context.Context) error
}

// Prompter asks the user for input: on the terminal, or line by line from
// standard input when that is not a terminal.
type Prompter interface {
	// Ask reads an answer that may be shown as it is typed.
	Ask(label string) (string, error)
	// AskSecret reads an answer without echoing it.
	AskSecret(label string) (Secret, error)
}

// Writer is implemented by providers that can store secrets, for
// `secretrun import`, which moves a .env file's values into a backend. It is
// separate from Provider because most uses only read, and a backend that
// cannot be written (an exec program, leased credentials) simply lacks it.
//
// An import asks ImportSource for the source to add to the config file,
// plans that source as any other, checks Existing, calls Write, and then
// Fetches the source to verify that every value reads back as written.
type Writer interface {
	// ImportSource returns the provider's part of a source that reads back
	// fields, once Write has stored them at dest: `path: secret/myapp` for
	// Vault, `keys: [A, B]` for the keyring. It rejects a dest that does not
	// suit the provider (a --secret for Vault, a --path for the keyring).
	ImportSource(dest Destination, fields []string) ([]SourceSetting, error)
	// Existing lists what Write would replace among the fields of src (a
	// source ImportSource described, planned): each item or parameter that
	// exists, or the whole secret, named as its backend names it. Empty
	// when nothing would be replaced.
	Existing(ctx context.Context, src *Source, fields []string) ([]string, error)
	// Write stores values so that a Fetch of src gives each one as the
	// field of its name. Unless replace is set, it stores nothing over an
	// existing secret or item, failing with an error that wraps ErrExists
	// where the backend can refuse atomically. It checks every value the
	// backend would refuse before storing any. written lists the fields
	// stored, in order, whether or not err is nil, so that a failure part
	// of the way through says exactly what is in the backend.
	Write(ctx context.Context, src *Source, values []NamedSecret, replace bool) (written []string, err error)
}

// Destination is where `secretrun import` writes: --path or --secret, as
// given (at most one is set).
type Destination struct {
	Path   string
	Secret string
}

// SourceSetting is one key of a source as the config file is to hold it.
type SourceSetting struct {
	Key string
	// Value is a string, or a []string for a list such as keys:.
	Value any
}

// NamedSecret is one value to store under a field name.
type NamedSecret struct {
	Name  string
	Value Secret
}
