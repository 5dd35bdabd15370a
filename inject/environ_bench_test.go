package inject_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/providers"
)

type benchRef string

func (r benchRef) String() string { return string(r) }

// environFixture is n variables from sources of ten fields each (one source
// when n < 10), every source with a prefix of its own as a config with many
// KV paths has them.
func environFixture(n int) ([]*providers.Source, []providers.Result) {
	per := min(n, 10)
	var (
		sources []*providers.Source
		results []providers.Result
	)
	for i := 0; i < n/per; i++ {
		sources = append(sources, &providers.Source{
			Provider: "vault",
			Ref:      benchRef(fmt.Sprintf("secret/app/%d", i)),
			Prefix:   fmt.Sprintf("S%d_", i),
			Pos:      "secretrun.yaml:" + strconv.Itoa(10+i) + ":7",
		})
		fields := make(map[string]providers.Field, per)
		for j := range per {
			fields[fmt.Sprintf("FIELD_%d", j)] = providers.Field{Value: providers.NewSecret(fmt.Sprintf("value-%032d", i*per+j))}
		}
		results = append(results, providers.Result{Fields: fields, Version: "3"})
	}
	return sources, results
}

// baseEnviron is a parent environment of typical size.
func baseEnviron() []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/dev", "LANG=C.UTF-8", "TERM=xterm-256color", "SHELL=/bin/bash"}
	for i := range 35 {
		env = append(env, fmt.Sprintf("APP_SETTING_%d=%d", i, i))
	}
	return env
}

// BenchmarkEnviron measures building the child's environment from fetched
// results: mapping fields to variables (Assemble) and merging them into
// secretrun's own environment (Environ).
func BenchmarkEnviron(b *testing.B) {
	base := baseEnviron()
	for _, n := range []int{10, 100, 1000} {
		sources, results := environFixture(n)
		b.Run(fmt.Sprintf("vars=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := inject.Assemble(sources, results)
				if err != nil {
					b.Fatal(err)
				}
				if env := inject.Environ(base, s.Vars, false); len(env) != len(base)+n {
					b.Fatalf("got %d variables, want %d", len(env), len(base)+n)
				}
			}
		})
	}
}
