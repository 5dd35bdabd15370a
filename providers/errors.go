package providers

import "errors"

// Errors that providers wrap, so that callers decide without matching
// strings. A provider's message names the provider instance and the path, and
// never a value: `vault "prod": read secret/myapp: permission denied`.
var (
	// ErrNotFound: the secret, field or key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrDenied: the credentials are valid but may not read this.
	ErrDenied = errors.New("permission denied")
	// ErrAuth: the credentials are missing, wrong or expired.
	ErrAuth = errors.New("authentication failed")
	// ErrUnavailable: the backend could not be reached or did not answer.
	ErrUnavailable = errors.New("backend unavailable")
	// ErrExists: a write would replace a secret that exists (Writer).
	ErrExists = errors.New("already exists")
)
