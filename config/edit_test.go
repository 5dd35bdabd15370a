package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

// commented is a config file as people write them: comments above, beside
// and below entries, blank lines, a quoted value, a block scalar and a list
// at its key's own indentation.
const commented = `# The secrets of the shop, by environment.
version: 1
default_environment: dev   # what a bare secretrun runs

providers:
  # The team's Vault.
  vault:
    type: vault
    address: "https://vault.internal:8200"

  local:
    type: keyring
    service: shop
# Sources, later ones win.
environments:
  dev:
  - from: local     # on laptops
    keys: [STRIPE_KEY]
  # staging reads Vault
  staging:
    - from: vault
      path: secret/shop/staging
      map:
        NOTE: |
          # not a comment
          a note

    # the old path, kept for a while
    # - from: vault
    #   path: secret/old

  prod:
      -   from: vault
          path: secret/shop/prod
`

func vaultSource(env, path string) config.NewSource {
	return config.NewSource{Environment: env, Provider: "vault", Settings: []providers.SourceSetting{{Key: "path", Value: path}}}
}

func TestAddSourceKeepsEveryOtherByte(t *testing.T) {
	cases := []struct {
		name string
		src  config.NewSource
		// after is the line after which the new lines go; want is them.
		after int
		want  string
	}{
		{"after a block scalar and trailing comments", vaultSource("staging", "secret/shop/staging-2"), 26,
			"    - from: vault\n      path: secret/shop/staging-2\n"},
		{"a list at its key's indentation", config.NewSource{Environment: "dev", Provider: "local", Settings: []providers.SourceSetting{{Key: "keys", Value: []string{"DB_URL", "API_KEY"}}}}, 18,
			"  - from: local\n    keys: [DB_URL, API_KEY]\n"},
		{"the last source of the file, its own indentation", vaultSource("prod", "secret/x: y"), 34,
			"      -   from: vault\n          path: \"secret/x: y\"\n"},
		{"a new environment", vaultSource("qa", "secret/shop/qa"), 34,
			"  qa:\n      - from: vault\n        path: secret/shop/qa\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			added, err := config.AddSource("secretrun.yaml", []byte(commented), tc.src)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(commented, "\n")
			want := strings.Join(lines[:tc.after], "") + tc.want + strings.Join(lines[tc.after:], "")
			if string(added.Text) != want {
				t.Fatalf("got:\n%s\nwant:\n%s", added.Text, want)
			}
			if _, err := config.Parse("secretrun.yaml", added.Text); err != nil {
				t.Fatalf("the edited file does not load: %v", err)
			}
			if got := strings.SplitAfter(string(added.Text), "\n")[added.Line-1]; !strings.Contains(got, "from: "+tc.src.Provider) {
				t.Fatalf("Line %d is %q, not the new source's from:", added.Line, got)
			}
		})
	}
}

func TestAddSourceRefusesWhatExistsUnlessReplace(t *testing.T) {
	// The same path, written with a trailing slash.
	_, err := config.AddSource("secretrun.yaml", []byte(commented), vaultSource("prod", "secret/shop/prod/"))
	var exists *config.ExistingSourceError
	if !errors.As(err, &exists) || exists.Pos != "secretrun.yaml:33:11" || exists.Path != "environments.prod[0]" {
		t.Fatalf("got %v, want the source at secretrun.yaml:33:11", err)
	}

	// A keyring source that shares a key: replaced, its keys kept.
	src := config.NewSource{Environment: "dev", Provider: "local", Replace: true,
		Settings: []providers.SourceSetting{{Key: "keys", Value: []string{"API_KEY", "STRIPE_KEY"}}}}
	added, err := config.AddSource("secretrun.yaml", []byte(commented), src)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(commented, "  - from: local     # on laptops\n    keys: [STRIPE_KEY]\n", "  - from: local\n    keys: [STRIPE_KEY, API_KEY]\n", 1)
	if string(added.Text) != want || added.Replaced != "secretrun.yaml:17:5" || added.Line != 17 {
		t.Fatalf("replaced %q at line %d:\n%s", added.Replaced, added.Line, added.Text)
	}
}

func TestAddProvider(t *testing.T) {
	text, ok, err := config.AddProvider("secretrun.yaml", []byte(commented), "aws", "aws-ssm", []providers.SourceSetting{{Key: "region", Value: "eu-west-1"}})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	want := strings.Replace(commented, "    service: shop\n", "    service: shop\n  aws:\n    type: aws-ssm\n    region: eu-west-1\n", 1)
	if string(text) != want {
		t.Fatalf("got:\n%s", text)
	}
	if again, ok, err := config.AddProvider("secretrun.yaml", text, "aws", "aws-ssm", nil); err != nil || ok || string(again) != string(text) {
		t.Fatalf("adding an instance that exists changed the file (%v, %v)", ok, err)
	}

	// No providers: section: one goes above the comments of environments:.
	bare := "version: 1\n\n# where\nenvironments:\n  dev:\n"
	text, _, err = config.AddProvider("secretrun.yaml", []byte(bare), "local", "keyring", []providers.SourceSetting{{Key: "service", Value: "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "version: 1\n\nproviders:\n  local:\n    type: keyring\n    service: shop\n\n# where\nenvironments:\n  dev:\n"; string(text) != want {
		t.Fatalf("got:\n%s", text)
	}
}

func TestNewFile(t *testing.T) {
	text, _, err := config.AddProvider("secretrun.yaml", config.NewFileText("dev"), "keyring", "keyring", []providers.SourceSetting{{Key: "service", Value: "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	added, err := config.AddSource("secretrun.yaml", text, config.NewSource{Environment: "dev", Provider: "keyring",
		Settings: []providers.SourceSetting{{Key: "keys", Value: []string{"A", "B"}}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `# Where this application's secrets live: addresses and paths, never values.
version: 1
default_environment: dev

providers:
  keyring:
    type: keyring
    service: shop

environments:
  dev:
    - from: keyring
      keys: [A, B]
`
	if string(added.Text) != want || added.Line != 12 {
		t.Fatalf("line %d:\n%s", added.Line, added.Text)
	}
	f, err := config.Parse("secretrun.yaml", added.Text)
	if err != nil || f.DefaultEnvironment != "dev" || !f.HasProvider("keyring") {
		t.Fatalf("the new file does not load as written: %v", err)
	}
}

func TestAddSourceToAnEmptyFlowList(t *testing.T) {
	src := "version: 1\nproviders:\n  v: {type: vault}\nenvironments:\n  dev: []   # none yet\n  prod: []\n"
	added, err := config.AddSource("secretrun.yaml", []byte(src), config.NewSource{Environment: "dev", Provider: "v",
		Settings: []providers.SourceSetting{{Key: "path", Value: "a/c"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := "version: 1\nproviders:\n  v: {type: vault}\nenvironments:\n  dev:   # none yet\n    - from: v\n      path: a/c\n  prod: []\n"
	if string(added.Text) != want || added.Line != 6 {
		t.Fatalf("line %d:\n%s", added.Line, added.Text)
	}
}

func TestAddSourceRefusesFlowStyle(t *testing.T) {
	src := "version: 1\nproviders:\n  v: {type: vault}\nenvironments:\n  dev: [{from: v, path: a/b}]\n"
	_, err := config.AddSource("secretrun.yaml", []byte(src), config.NewSource{Environment: "dev", Provider: "v",
		Settings: []providers.SourceSetting{{Key: "path", Value: "a/c"}}})
	if err == nil || !strings.Contains(err.Error(), "secretrun.yaml:5:8: environments.dev: is written in flow style") {
		t.Fatalf("got %v", err)
	}
}
