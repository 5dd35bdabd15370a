package providertest

import (
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

func TestFakeConformance(t *testing.T) {
	fake := NewFake()
	opts, err := config.OptionsFromYAML("{}")
	if err != nil {
		t.Fatal(err)
	}
	p, err := fake.Type().New("mem", opts, providers.Env{Keyring: NewKeyring()})
	if err != nil {
		t.Fatal(err)
	}
	Run(t, Backend{
		Provider: p,
		Name:     "mem",
		Put: func(t *testing.T, name string, fields map[string]string) string {
			fake.Set(name, fields)
			return "path: " + name
		},
		Missing: func(t *testing.T) string { return "path: does/not/exist" },
	})
}
