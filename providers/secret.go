package providers

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
)

// Redacted is what a Secret prints as, in every format.
const Redacted = "[redacted]"

// Secret holds one secret value. It redacts itself wherever it might be
// printed, logged or marshalled, so the raw value is reachable only through
// Reveal, at the few places that build the child's environment or talk to a
// backend.
type Secret struct {
	value string
}

// NewSecret wraps a value.
func NewSecret(value string) Secret { return Secret{value: value} }

// Reveal returns the raw value.
func (s Secret) Reveal() string { return s.value }

// Len is the length of the value in bytes.
func (s Secret) Len() int { return len(s.value) }

// Equal reports whether two secrets hold the same value, in constant time.
func (s Secret) Equal(other Secret) bool {
	return subtle.ConstantTimeCompare([]byte(s.value), []byte(other.value)) == 1
}

// String redacts.
func (s Secret) String() string { return Redacted }

// GoString redacts, so %#v cannot print the value either.
func (s Secret) GoString() string { return "providers.Secret(" + Redacted + ")" }

// Format redacts for every verb, including %x and %q, which would otherwise
// print the bytes of the unexported field.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprint(f, Redacted)
}

// LogValue redacts in structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

var errMarshalSecret = errors.New("a secret value cannot be marshalled")

// MarshalJSON refuses: a secret that needs to leave as JSON must be revealed
// on purpose.
func (s Secret) MarshalJSON() ([]byte, error) { return nil, errMarshalSecret }

// MarshalText refuses, for the same reason as MarshalJSON.
func (s Secret) MarshalText() ([]byte, error) { return nil, errMarshalSecret }
