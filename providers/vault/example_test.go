package vault

import (
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

// TestExampleConfig keeps examples/vault/secretrun.yaml valid.
func TestExampleConfig(t *testing.T) {
	f, err := config.Load("../../examples/vault/secretrun.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	reg.Register(Type())
	vars := map[string]string{"VAULT_ADDR": "https://vault.example.com", "VAULT_ROLE_ID": "role"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, env := range []string{"dev", "prod"} {
		plan, err := f.Plan(reg, config.Selection{Environment: env, Scope: "api", Lookup: lookup}, newEnv(vars).env())
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		if len(plan.Sources) == 0 {
			t.Errorf("%s: no sources", env)
		}
	}
}
