// Package all is the one place that lists every provider secretrun ships.
package all

import (
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/awssm"
	"github.com/secretrun/secretrun/providers/awsssm"
	"github.com/secretrun/secretrun/providers/exec"
	"github.com/secretrun/secretrun/providers/infisical"
	"github.com/secretrun/secretrun/providers/keyring"
	"github.com/secretrun/secretrun/providers/vault"
)

// Registry returns a registry holding every provider type.
func Registry() *providers.Registry {
	r := providers.NewRegistry()
	r.Register(awssm.Type())
	r.Register(awsssm.Type())
	r.Register(exec.Type())
	r.Register(infisical.Type())
	r.Register(keyring.Type())
	r.Register(vault.Type())
	return r
}
