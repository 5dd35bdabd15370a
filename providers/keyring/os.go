package keyring

import (
	"errors"
	"fmt"

	gokeyring "github.com/zalando/go-keyring"

	"github.com/secretrun/secretrun/providers"
)

// OS is the operating system's keyring. It wraps go-keyring, whose
// package-level functions are the only way in, behind providers.Keyring so
// everything else can be tested with an in-memory keyring. On Linux it also
// reads many items at once (GetMany), talking to the Secret Service itself.
type OS struct{}

// Get reads an item; a missing one is an error wrapping providers.ErrNotFound.
func (OS) Get(service, key string) (providers.Secret, error) {
	v, err := gokeyring.Get(service, key)
	if err != nil {
		return providers.Secret{}, osError(err)
	}
	return providers.NewSecret(v), nil
}

// Set stores an item, replacing any with the same service and key.
func (OS) Set(service, key string, value providers.Secret) error {
	return osError(gokeyring.Set(service, key, value.Reveal()))
}

// Delete removes an item; a missing one is an error wrapping
// providers.ErrNotFound.
func (OS) Delete(service, key string) error {
	return osError(gokeyring.Delete(service, key))
}

func osError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gokeyring.ErrNotFound):
		return providers.ErrNotFound
	default:
		return fmt.Errorf("%w: OS keyring: %v", providers.ErrUnavailable, err)
	}
}
