// Package all is the one place that lists every provider secretrun ships.
package all

import (
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/keyring"
)

// Registry returns a registry holding every provider type.
func Registry() *providers.Registry {
	r := providers.NewRegistry()
	r.Register(keyring.Type())
	return r
}
