package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/all"
)

// BenchmarkLoadAndPlan100Sources is what a start spends on a config of 100
// Vault paths before it contacts anything: parse, check, plan.
func BenchmarkLoadAndPlan100Sources(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("version: 1\nproviders:\n  vault:\n    type: vault\n    address: http://127.0.0.1:8200\nenvironments:\n  bench:\n")
	for i := range 100 {
		fmt.Fprintf(&sb, "    - from: vault\n      path: secret/bench/p%03d\n", i)
	}
	src := []byte(sb.String())
	reg := all.Registry()
	env := providers.Env{Getenv: func(string) string { return "" }, Environ: func() []string { return nil }}
	for b.Loop() {
		f, err := config.Parse("secretrun.yaml", src)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Plan(reg, config.Selection{Environment: "bench"}, env); err != nil {
			b.Fatal(err)
		}
	}
}
