package awssm

import (
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

// TestExampleConfig checks that examples/aws/secretrun.yaml plans every
// environment, without contacting AWS.
func TestExampleConfig(t *testing.T) {
	f, err := config.Load("../../examples/aws/secretrun.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	reg.Register(Type())
	for _, env := range f.Environments {
		sel := config.Selection{Environment: env, Scope: "api", Lookup: func(string) (string, bool) { return "", false }}
		plan, err := f.Plan(reg, sel, envOf(t, nil))
		if err != nil {
			t.Fatalf("environment %s: %v", env, err)
		}
		if len(plan.Sources) == 0 {
			t.Errorf("environment %s has no sources", env)
		}
		for _, p := range plan.Providers {
			if p.(*provider).conn.Peek() != nil {
				t.Errorf("planning made a client")
			}
		}
	}
}
