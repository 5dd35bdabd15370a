package inject_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
)

// setup plans config text against two fake backends, "mem" and "other".
func setup(t *testing.T, text string) (*config.Plan, *providertest.Fake, *providertest.Fake) {
	t.Helper()
	mem, other := providertest.NewFake(), providertest.NewFake()
	reg := providers.NewRegistry()
	reg.Register(mem.Type())
	otherType := other.Type()
	otherType.Name = "other"
	reg.Register(otherType)
	f, err := config.Parse("secretrun.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Plan(reg, config.Selection{}, providers.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return p, mem, other
}

func resolve(t *testing.T, p *config.Plan) (*inject.Secrets, error) {
	t.Helper()
	return inject.Resolve(context.Background(), p.Sources, p.Providers)
}

func vars(s *inject.Secrets) map[string]string {
	out := map[string]string{}
	for _, v := range s.Vars {
		out[v.Name] = v.Value.Reveal()
	}
	return out
}

const twoBackends = `version: 1
providers:
  a: {type: fake}
  b: {type: other}
environments:
  dev:
    - from: a
      path: app
    - from: b
      path: overrides
      keys: [API_KEY]
    - from: a
      path: db
      map: {DB_USER: username, DB_PASSWORD: password}
      prefix: IGNORED_
    - from: a
      path: stripe
      prefix: STRIPE_
    - from: a
      path: plain-token
      as: TOKEN
    - from: b
      path: maybe
      optional: true
`

func seed(mem, other *providertest.Fake) {
	mem.Set("app", map[string]string{"API_KEY": "from-app", "REGION": "eu"})
	other.Set("overrides", map[string]string{"API_KEY": "from-overrides", "UNSELECTED": "x"})
	mem.Set("db", map[string]string{"username": "u1", "password": "p1", "host": "not-mapped"})
	mem.Set("stripe", map[string]string{"KEY": "sk", "WEBHOOK": "wh"})
	mem.Set("plain-token", map[string]string{providers.Plain: "tok"})
}

func TestResolveSelectsRenamesAndOverrides(t *testing.T) {
	p, mem, other := setup(t, twoBackends)
	seed(mem, other)
	s, err := resolve(t, p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"API_KEY": "from-overrides", "REGION": "eu",
		"DB_USER": "u1", "DB_PASSWORD": "p1",
		"STRIPE_KEY": "sk", "STRIPE_WEBHOOK": "wh",
		"TOKEN": "tok",
	}
	got := vars(s)
	if len(got) != len(want) {
		t.Errorf("got variables %v, want %v", slices.Sorted(mapKeys(got)), slices.Sorted(mapKeys(want)))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// The later source wins and remembers whom it overrode.
	for _, v := range s.Vars {
		if v.Name == "API_KEY" && (v.Source.Provider != "b" || len(v.Overrides) != 1 || v.Overrides[0].Provider != "a") {
			t.Errorf("API_KEY origin %s overrides %v", v.Origin(), v.Overrides)
		}
	}
	// Names keep the order in which they were first defined.
	if s.Vars[0].Name != "API_KEY" || s.Vars[1].Name != "REGION" {
		t.Errorf("order: %s, %s", s.Vars[0].Name, s.Vars[1].Name)
	}
}

func TestResolveIsAllOrNothing(t *testing.T) {
	p, mem, other := setup(t, twoBackends)
	seed(mem, other)
	mem.Delete("stripe")
	s, err := resolve(t, p)
	if s != nil || !errors.Is(err, providers.ErrNotFound) {
		t.Fatalf("got %v, %v; want no secrets and ErrNotFound", s, err)
	}
	if !strings.HasPrefix(err.Error(), "secretrun.yaml:16:7: ") || !strings.Contains(err.Error(), "stripe") {
		t.Errorf("error %q does not name the source's position and path", err)
	}

	seed(mem, other)
	other.SetDown(errors.New("connection refused"))
	s, err = resolve(t, p)
	if s != nil || !errors.Is(err, providers.ErrUnavailable) {
		t.Fatalf("backend down: got %v, %v", s, err)
	}
}

func TestResolveFieldErrors(t *testing.T) {
	cases := []struct {
		name, source string
		fields       map[string]string
		want         string
	}{
		{"plain needs as", "path: s", map[string]string{providers.Plain: "v"}, "name its variable with `as: NAME`"},
		{"as needs plain", "path: s\n   as: X", map[string]string{"a": "1"}, "`as` names a plain secret's variable, but this secret has fields (a)"},
		{"missing key", "path: s\n   keys: [nope]", map[string]string{"a": "1"}, `field "nope": not found (the secret has: a)`},
		{"missing mapped field", "path: s\n   map: {X: nope}", map[string]string{"a": "1"}, `field "nope": not found`},
		{"invalid names", "path: s", map[string]string{"my-key": "1", "2FA": "2", "ok": "3"}, "not valid environment variable names: 2FA, my-key; rename them with map:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, mem, _ := setup(t, "version: 1\nproviders: {a: {type: fake}, b: {type: other}}\nenvironments:\n dev:\n - from: a\n   "+c.source+"\n")
			mem.Set("s", c.fields)
			_, err := resolve(t, p)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			for _, v := range c.fields {
				if len(v) > 1 && strings.Contains(err.Error(), v) {
					t.Errorf("the error shows a value: %q", err)
				}
			}
		})
	}
}

func TestNestedFieldsNeedAnExplicitMap(t *testing.T) {
	src := &providers.Source{Provider: "a", Pos: "f:1:1", Ref: stringRef("s")}
	result := providers.Result{Fields: map[string]providers.Field{
		"plain":  {Value: providers.NewSecret("v")},
		"nested": {Value: providers.NewSecret(`{"k":1}`), Nested: true},
	}}
	if _, err := inject.Assemble([]*providers.Source{src}, []providers.Result{result}); err == nil || !strings.Contains(err.Error(), `field "nested" holds an object or a list`) {
		t.Fatalf("got %v", err)
	}
	src.Map = []providers.Rename{{Var: "CONFIG_JSON", Field: "nested"}}
	s, err := inject.Assemble([]*providers.Source{src}, []providers.Result{result})
	if err != nil || vars(s)["CONFIG_JSON"] != `{"k":1}` || len(s.Vars) != 1 {
		t.Fatalf("mapped nested field: %v %v", s, err)
	}
}

func TestEnviron(t *testing.T) {
	vars := []inject.Variable{
		{Name: "TOKEN", Value: providers.NewSecret("secret-token")},
		{Name: "NEW", Value: providers.NewSecret("new")},
	}
	base := []string{"PATH=/bin", "TOKEN=from-shell", "HOME=/home/u"}
	got := inject.Environ(base, vars, false)
	want := []string{"PATH=/bin", "HOME=/home/u", "TOKEN=secret-token", "NEW=new"}
	if !slices.Equal(got, want) {
		t.Errorf("override: got %q, want %q", got, want)
	}
	got = inject.Environ(base, vars, true)
	want = []string{"PATH=/bin", "TOKEN=from-shell", "HOME=/home/u", "NEW=new"}
	if !slices.Equal(got, want) {
		t.Errorf("preserve: got %q, want %q", got, want)
	}
	if _, set := os.LookupEnv("NEW"); set {
		t.Error("building the child's environment changed secretrun's own")
	}
}

type stringRef string

func (s stringRef) String() string { return string(s) }

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
