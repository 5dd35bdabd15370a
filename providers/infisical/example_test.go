package infisical

import (
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

// TestExampleConfig checks that examples/infisical/secretrun.yaml plans every
// environment, without contacting Infisical.
func TestExampleConfig(t *testing.T) {
	f, err := config.Load("../../examples/infisical/secretrun.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	reg.Register(Type())
	lookup := func(name string) (string, bool) {
		if name == "INFISICAL_IDENTITY_ID" {
			return "k8s-identity", true
		}
		return "", false
	}
	for _, env := range f.Environments {
		sel := config.Selection{Environment: env, Scope: "api", Lookup: lookup}
		plan, err := f.Plan(reg, sel, providers.Env{Getenv: func(string) string { return "" }})
		if err != nil {
			t.Fatalf("environment %s: %v", env, err)
		}
		if len(plan.Sources) == 0 {
			t.Errorf("environment %s has no sources", env)
		}
		for _, p := range plan.Providers {
			if p.(*provider).s != nil {
				t.Errorf("planning logged in")
			}
		}
	}
}
