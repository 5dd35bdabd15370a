package providertest

import (
	"github.com/secretrun/secretrun/providers"
)

func providersEnv() providers.Env {
	return providers.Env{Getenv: func(string) string { return "" }, Keyring: NewKeyring()}
}
