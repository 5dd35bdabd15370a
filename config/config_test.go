package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
)

func registry() *providers.Registry {
	r := providers.NewRegistry()
	r.Register(providertest.NewFake().Type())
	return r
}

func lookup(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func planText(t *testing.T, text string, sel config.Selection) (*config.Plan, error) {
	t.Helper()
	f, err := config.Parse("secretrun.yaml", []byte(text))
	if err != nil {
		return nil, err
	}
	return f.Plan(registry(), sel, providers.Env{Getenv: func(string) string { return "" }})
}

const monorepo = `version: 1
default_environment: dev
providers:
  mem:
    type: fake
environments:
  dev:
    - from: mem
      path: apps/{scope}/{env}
      prefix: APP_
      keys: [a, b]
    - from: mem
      path: shared/${TEAM}
      map: {DB_USER: username, DB_PASS: password}
      optional: true
      version: 3
  prod:
    - from: mem
      path: prod/{scope}
`

func TestPlanResolvesPlaceholders(t *testing.T) {
	p, err := planText(t, monorepo, config.Selection{Scope: "web", Lookup: lookup(map[string]string{"TEAM": "payments"})})
	if err != nil {
		t.Fatal(err)
	}
	if p.Environment != "dev" {
		t.Errorf("environment %q, want the default dev", p.Environment)
	}
	if len(p.Sources) != 2 {
		t.Fatalf("%d sources, want 2", len(p.Sources))
	}
	first, second := p.Sources[0], p.Sources[1]
	if got := first.Ref.String(); got != "apps/web/dev" {
		t.Errorf("first path %q, want apps/web/dev", got)
	}
	if first.Prefix != "APP_" || strings.Join(first.Keys, ",") != "a,b" || first.Pos != "secretrun.yaml:8:7" {
		t.Errorf("first source: prefix %q keys %v pos %s", first.Prefix, first.Keys, first.Pos)
	}
	if got := second.Ref.String(); got != "shared/payments" {
		t.Errorf("second path %q, want shared/payments", got)
	}
	want := []providers.Rename{{Var: "DB_USER", Field: "username"}, {Var: "DB_PASS", Field: "password"}}
	if len(second.Map) != 2 || second.Map[0] != want[0] || second.Map[1] != want[1] {
		t.Errorf("map %v, want %v in file order", second.Map, want)
	}
	if !second.Optional || second.Version != "3" || second.Environment != "dev" {
		t.Errorf("optional %v version %q environment %q", second.Optional, second.Version, second.Environment)
	}
}

// The common keys of a source are read from the text its placeholders
// resolved to, and a source without any reads as the file says.
func TestPlanReadsCommonKeysAfterPlaceholders(t *testing.T) {
	text := `version: 1
providers:
  mem:
    type: fake
environments:
  dev:
    - from: mem
      path: plain
      prefix: ${PFX}
      keys: ["{env}_key"]
    - from: mem
      path: plain
      prefix: FIXED_
      keys: [k]
`
	p, err := planText(t, text, config.Selection{Lookup: lookup(map[string]string{"PFX": "APP_"})})
	if err != nil {
		t.Fatal(err)
	}
	first, second := p.Sources[0], p.Sources[1]
	if first.Prefix != "APP_" || strings.Join(first.Keys, ",") != "dev_key" {
		t.Errorf("first source: prefix %q keys %v, want APP_ and dev_key", first.Prefix, first.Keys)
	}
	if second.Prefix != "FIXED_" || strings.Join(second.Keys, ",") != "k" || second.Pos != "secretrun.yaml:11:7" {
		t.Errorf("second source: prefix %q keys %v pos %s, want FIXED_, k at secretrun.yaml:11:7", second.Prefix, second.Keys, second.Pos)
	}
}

func TestPlanErrors(t *testing.T) {
	cases := []struct {
		name, text string
		sel        config.Selection
		want       string
	}{
		{"unset variable", monorepo, config.Selection{Scope: "web"},
			"secretrun.yaml:13:13: environments.dev[1].path: ${TEAM} is not set in secretrun's environment"},
		{"missing scope", monorepo, config.Selection{Lookup: lookup(map[string]string{"TEAM": "x"})},
			"secretrun.yaml:9:13: environments.dev[0].path: {scope} needs a scope"},
		{"unknown environment", monorepo, config.Selection{Environment: "qa"},
			`environment "qa" is not defined under environments: (defined: dev, prod)`},
		{"bad reference", strings.Replace(monorepo, "${TEAM}", "${TEAM-x}", 1), config.Selection{Scope: "s"},
			"${TEAM-x} is not a valid reference"},
		{"provider's own key", strings.Replace(monorepo, "path: prod/{scope}", "pth: prod/{scope}", 1), config.Selection{Environment: "prod", Scope: "s"},
			`secretrun.yaml:19:7: environments.prod[0]: unknown key "pth" (valid keys: as, env, files, from, keys, map, optional, path, prefix, version)`},
		{"invalid variable name in map", strings.Replace(monorepo, "DB_USER:", "DB-USER:", 1), config.Selection{Scope: "s"},
			`"DB-USER" is not a valid variable name`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := planText(t, c.text, c.sel)
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("got %v, want a *config.Error", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %q\nwant it to contain %q", err, c.want)
			}
		})
	}
}

func TestOtherEnvironmentsNeedNotResolve(t *testing.T) {
	// prod's {scope} and dev's ${TEAM} are not needed to run prod with a scope.
	if _, err := planText(t, monorepo, config.Selection{Environment: "prod", Scope: "api"}); err != nil {
		t.Fatalf("prod: %v", err)
	}
}

func TestVariableDefaultsAndEscapes(t *testing.T) {
	text := `version: 1
providers: {mem: {type: fake}}
environments:
  dev:
    - from: mem
      path: "${REGION:-eu-west-1}/$${LITERAL}/${EMPTY:-fallback}/${SET}"
`
	p, err := planText(t, text, config.Selection{Lookup: lookup(map[string]string{"EMPTY": "", "SET": "x"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Sources[0].Ref.String(); got != "eu-west-1/${LITERAL}/fallback/x" {
		t.Errorf("got %q", got)
	}
}

func TestUnusedProviderKeysAreChecked(t *testing.T) {
	text := `version: 1
providers:
  mem: {type: fake}
  other:
    type: fake
    adress: x
environments:
  dev: [{from: mem, path: a}]
`
	_, err := planText(t, text, config.Selection{})
	if err == nil || !strings.Contains(err.Error(), `secretrun.yaml:6:5: providers.other: unknown key "adress"`) {
		t.Fatalf("got %v, want the unknown key of the unused provider", err)
	}
}

func TestWatchSettings(t *testing.T) {
	text := `version: 1
providers: {mem: {type: fake}}
environments: {dev: []}
watch:
  enabled: true
  interval: 5s
  on_change: signal
  signal: SIGUSR1
`
	p, err := planText(t, text, config.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	w := p.Watch
	if !w.Enabled || w.Interval != 5*time.Second || w.OnChange != "signal" || w.Signal != "SIGUSR1" || w.StopTimeout != config.DefaultWatch.StopTimeout {
		t.Errorf("watch %+v", w)
	}
	_, err = planText(t, strings.Replace(text, "interval: 5s", "interval: soon", 1), config.Selection{})
	if err == nil || !strings.Contains(err.Error(), "secretrun.yaml:6:13: watch.interval: ") {
		t.Errorf("bad interval: got %v", err)
	}
}

func TestFindWalksUp(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "services", "web", "src")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Find(deep); !errors.Is(err, config.ErrNoConfig) {
		t.Fatalf("no file yet: got %v", err)
	}
	want := filepath.Join(root, "services", config.FileName)
	if err := os.WriteFile(want, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := config.Find(deep); err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

func TestEmptyAndMalformedFiles(t *testing.T) {
	for text, want := range map[string]string{
		"":                                   "the file is empty",
		"- a\n- b\n":                         "must be a mapping",
		"version: 1\n":                       "no `environments:`",
		"version: 1\nenvironments: {dev: x}": "environments.dev: must be a list of sources",
		"version: 1\nenvironments:\n  dev:\n    - keys: [A]\n": "missing `from:`",
		"version: 1\nextra: 1\nenvironments: {dev: []}":        `unknown key "extra"`,
	} {
		_, err := config.Parse("secretrun.yaml", []byte(text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", text, err, want)
		}
	}
}

func TestUnusedProviderValuesNeedNotResolve(t *testing.T) {
	text := `version: 1
providers:
  mem: {type: fake}
  prod:
    type: fake
environments:
  dev: [{from: mem, path: a}]
`
	if _, err := planText(t, text, config.Selection{}); err != nil {
		t.Fatalf("an unused provider failed the plan: %v", err)
	}
}

// The audit settings are read from the file when it has them, checked as
// strictly as the rest, and absent (no sink) when it has none.
func TestAuditSettings(t *testing.T) {
	base := "version: 1\nenvironments:\n  dev: []\n"
	for _, c := range []struct {
		name, text, sink, err string
	}{
		{"none", base, "", ""},
		{"null", base + "audit:\n", "", ""},
		{"stderr", base + "audit:\n  sink: stderr\n", "stderr", ""},
		{"relative file", base + "audit:\n  sink: file:trail.log\n", "file:" + filepath.Join("conf", "trail.log"), ""},
		{"expanded", base + "audit:\n  sink: ${SINK}\n", "journald", ""},
		{"unknown sink", base + "audit:\n  sink: s3\n", "", `secretrun.yaml:5:9: audit.sink: unknown sink "s3"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			name := "secretrun.yaml"
			if c.name == "relative file" {
				name = filepath.Join("conf", "secretrun.yaml")
			}
			f, err := config.Parse(name, []byte(c.text))
			if err != nil {
				t.Fatal(err)
			}
			a, err := f.Audit(lookup(map[string]string{"SINK": "journald"}))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Audit() error = %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil || a.Sink != c.sink {
				t.Errorf("Audit() = %+v, %v; want sink %q", a, err, c.sink)
			}
		})
	}
}
