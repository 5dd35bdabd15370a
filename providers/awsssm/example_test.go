package awsssm

import (
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

// TestExampleConfig plans examples/aws-ssm/secretrun.yaml without
// contacting AWS, and checks that {env} reached the paths.
func TestExampleConfig(t *testing.T) {
	f, err := config.Load("../../examples/aws-ssm/secretrun.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	reg.Register(Type())
	plan, err := f.Plan(reg, config.Selection{Environment: "prod", Lookup: func(string) (string, bool) { return "", false }}, envOf(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, s := range plan.Sources {
		refs = append(refs, s.Ref.String())
	}
	want := []string{"/myapp/prod", "/shared/prod", "/myapp/prod/signing-key:stable", "/myapp/prod/feature-flags"}
	if len(refs) != len(want) {
		t.Fatalf("sources %q, want %q", refs, want)
	}
	for i := range want {
		if refs[i] != want[i] {
			t.Errorf("source %d reads %q, want %q", i, refs[i], want[i])
		}
	}
	for _, p := range plan.Providers {
		if p.(*provider).conn.Peek() != nil {
			t.Errorf("planning made a client")
		}
	}
}
