package mototest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
)

// Env makes a providers.Env whose Getenv answers from vars only, with an
// empty home, so that nothing of the machine running the tests leaks in.
func Env(t *testing.T, vars map[string]string) providers.Env {
	return providers.Env{
		Getenv:  func(k string) string { return vars[k] },
		HomeDir: t.TempDir(),
		Keyring: providertest.NewKeyring(),
	}
}

// Options parses a provider block's settings, failing the test on bad YAML.
func Options(t *testing.T, settings string) providers.Options {
	t.Helper()
	opts, err := config.OptionsFromYAML(settings)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

// Source parses a source of p, the provider instance named name.
func Source(t *testing.T, p providers.Provider, name, yaml string) *providers.Source {
	t.Helper()
	s, err := config.SourceFromYAML(p, name, yaml)
	if err != nil {
		t.Fatalf("source %q: %v", yaml, err)
	}
	return s
}

// Fetch fetches srcs, failing the test on an error of the whole fetch.
func Fetch(t *testing.T, p providers.Provider, srcs ...*providers.Source) []providers.Result {
	t.Helper()
	results, err := p.Fetch(context.Background(), srcs)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(results) != len(srcs) {
		t.Fatalf("%d results for %d sources", len(results), len(srcs))
	}
	return results
}

// Versions labels srcs, failing the test on an error.
func Versions(t *testing.T, p providers.Versioner, srcs ...*providers.Source) []string {
	t.Helper()
	out, err := p.Versions(context.Background(), srcs)
	if err != nil {
		t.Fatalf("Versions: %v", err)
	}
	if len(out) != len(srcs) {
		t.Fatalf("%d labels for %d sources", len(out), len(srcs))
	}
	return out
}

// Values reveals a result's fields, failing on its error.
func Values(t *testing.T, r providers.Result) map[string]string {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("result error: %v", r.Err)
	}
	out := map[string]string{}
	for k, f := range r.Fields {
		out[k] = f.Value.Reveal()
	}
	return out
}

// WantErr fails the test unless err wraps sentinel (when not nil) and
// contains every one of contains.
func WantErr(t *testing.T, err, sentinel error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one wrapping %v", sentinel)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("error %q does not wrap %v", err, sentinel)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not contain %q", err, c)
		}
	}
}
