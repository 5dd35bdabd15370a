// Package examples holds runnable configurations; its test keeps every one
// of them valid as secretrun changes.
package examples

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/all"
	"github.com/secretrun/secretrun/providers/providertest"
)

// TestExampleConfigsPlan plans every environment of every example config
// with the real provider types, as `secretrun check --offline` does: no
// unknown key, no wrong type, no undefined provider, in any of them.
func TestExampleConfigsPlan(t *testing.T) {
	var files []string
	err := filepath.WalkDir(".", func(path string, e fs.DirEntry, err error) error {
		if err == nil && e.Name() == config.FileName {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("found %d example configs (%v); expected one per example", len(files), files)
	}
	// Stand-ins for the variables an example expects from its deployment.
	lookup := func(name string) (string, bool) {
		if strings.Contains(name, "ADDR") || strings.Contains(name, "URL") {
			return "https://secrets.example.com", true
		}
		return "example-" + strings.ToLower(name), true
	}
	env := providers.Env{Getenv: func(string) string { return "" }, Keyring: providertest.NewKeyring()}
	for _, file := range files {
		f, err := config.Load(file)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		for _, name := range f.Environments {
			p, err := f.Plan(all.Registry(), config.Selection{Environment: name, Scope: "web", Lookup: lookup}, env)
			if err != nil {
				t.Errorf("%s, environment %s: %v", file, name, err)
				continue
			}
			if len(p.Sources) == 0 {
				t.Errorf("%s, environment %s: no sources", file, name)
			}
		}
	}
}
