package config_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

const withFiles = `version: 1
providers: {mem: {type: fake}}
environments:
  prod:
    - from: mem
      path: tls
      files:
        TLS_CERT_FILE: cert
        TLS_KEY_FILE: key
    - from: mem
      path: db
      env: false
    - from: mem
      path: signing
      files: {SIGNING_KEY_FILE: ""}
files:
  PGPASSFILE:
    template: "127.0.0.1:5432:app:{{ .DB_USER }}:{{ .DB_PASSWORD }}\n"
  APP_CONFIG:
    template: |
      user: {{ .DB_USER }}
      password: {{ .DB_PASSWORD }}
`

func TestSourceFilesAndEnvFalse(t *testing.T) {
	p, err := planText(t, withFiles, config.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	tls, db, signing := p.Sources[0], p.Sources[1], p.Sources[2]
	want := []providers.Rename{{Var: "TLS_CERT_FILE", Field: "cert"}, {Var: "TLS_KEY_FILE", Field: "key"}}
	if len(tls.Files) != 2 || tls.Files[0] != want[0] || tls.Files[1] != want[1] || tls.NoEnv {
		t.Errorf("tls: files %v no-env %v", tls.Files, tls.NoEnv)
	}
	if !db.NoEnv || len(db.Files) != 0 {
		t.Errorf("db: files %v no-env %v, want env: false", db.Files, db.NoEnv)
	}
	if len(signing.Files) != 1 || signing.Files[0] != (providers.Rename{Var: "SIGNING_KEY_FILE", Field: providers.Plain}) {
		t.Errorf("signing: files %v, want the plain value", signing.Files)
	}
	if len(p.Files) != 2 || p.Files[0].Name() != "PGPASSFILE" || p.Files[1].Name() != "APP_CONFIG" {
		t.Fatalf("templates %v", p.Files)
	}
	if p.Files[0].Pos() != "secretrun.yaml:17:3" {
		t.Errorf("PGPASSFILE at %s", p.Files[0].Pos())
	}
}

func TestTemplatesRender(t *testing.T) {
	p, err := planText(t, withFiles, config.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DB_USER": "app_rw", "DB_PASSWORD": "s3cr3t:pw"}
	got, err := p.Files[0].Render(vars)
	if err != nil || got.Reveal() != "127.0.0.1:5432:app:app_rw:s3cr3t:pw\n" {
		t.Errorf("PGPASSFILE: %q, %v", got.Reveal(), err)
	}
	got, err = p.Files[1].Render(vars)
	if err != nil || got.Reveal() != "user: app_rw\npassword: s3cr3t:pw\n" {
		t.Errorf("APP_CONFIG: %q, %v", got.Reveal(), err)
	}
}

func TestTemplateHelpers(t *testing.T) {
	account := `{"type":"service_account","client_email":"ci@example.iam","keys":[{"id":"k1"}],"port":5432}`
	vars := map[string]string{
		"B64":     base64.StdEncoding.EncodeToString([]byte("decoded-value")),
		"ACCOUNT": account,
		"EMPTY":   "",
	}
	for text, want := range map[string]string{
		`{{ .B64 | base64decode }}`:            "decoded-value",
		`{{ "plain" | base64encode }}`:         "cGxhaW4=",
		`{{ .ACCOUNT | json "client_email" }}`: "ci@example.iam",
		`{{ .ACCOUNT | json "keys.0.id" }}`:    "k1",
		`{{ .ACCOUNT | json "port" }}`:         "5432",
		`{{ .ACCOUNT | json "keys" }}`:         `[{"id":"k1"}]`,
		`{{ .EMPTY | default "fallback" }}`:    "fallback",
		`{{ .B64 | default "fallback" }}`:      vars["B64"],
	} {
		got, err := renderOne(t, text, vars)
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", text, got, err, want)
		}
	}
}

// renderOne renders text as the template of a one-line files: entry on
// line 5 of the file, its text from column 16.
func renderOne(t *testing.T, text string, vars map[string]string) (string, error) {
	t.Helper()
	f, err := config.Parse("secretrun.yaml", []byte(oneTemplate(text)))
	if err != nil {
		return "", err
	}
	out, err := f.Files[0].Render(vars)
	return out.Reveal(), err
}

func oneTemplate(text string) string {
	return "version: 1\nenvironments: {dev: []}\nfiles:\n  OUT:\n    template: '" + strings.ReplaceAll(text, "'", "''") + "'\n"
}

func TestTemplateErrorsNamePositions(t *testing.T) {
	vars := map[string]string{"DB_USER": "app_rw", "SECRET": "not-base64-!!", "ACCOUNT": `{"a":1}`}
	cases := []struct {
		name, config string
		want         string
	}{
		{"missing variable, double-quoted", withFiles,
			`secretrun.yaml:18:53: files.PGPASSFILE.template: {{ .DB_PASSWORD }}: no variable DB_PASSWORD in this environment (defined: ACCOUNT, DB_USER, SECRET)`},
		{"missing variable, literal block", strings.Replace(withFiles, `"127.0.0.1:5432:app:{{ .DB_USER }}:{{ .DB_PASSWORD }}\n"`, `x`, 1),
			`secretrun.yaml:22:20: files.APP_CONFIG.template: {{ .DB_PASSWORD }}: no variable DB_PASSWORD`},
		{"after an escape", strings.Replace(withFiles, `app:{{ .DB_USER }}:`, `a\tp:{{ .DB_USER }}:`, 1),
			`secretrun.yaml:18:54: files.PGPASSFILE.template: {{ .DB_PASSWORD }}`},
		{"not base64", oneTemplate(`key={{ .SECRET | base64decode }}`),
			`secretrun.yaml:5:33: files.OUT.template: {{ .SECRET | base64decode }}: error calling base64decode: the value is not base64`},
		{"no such JSON field", oneTemplate(`{{ .ACCOUNT | json "b" }}`),
			`secretrun.yaml:5:30: files.OUT.template: {{ .ACCOUNT | json "b" }}: error calling json: the JSON value has no field "b"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := config.Parse("secretrun.yaml", []byte(c.config))
			if err != nil {
				t.Fatal(err)
			}
			var rerr error
			for _, tmpl := range f.Files {
				if _, rerr = tmpl.Render(vars); rerr != nil {
					break
				}
			}
			var cerr *config.Error
			if !errors.As(rerr, &cerr) || !strings.Contains(rerr.Error(), c.want) {
				t.Errorf("got %v\nwant it to contain %q", rerr, c.want)
			}
			for _, v := range vars {
				if strings.Contains(rerr.Error(), v) {
					t.Errorf("the error shows a value: %v", rerr)
				}
			}
		})
	}
}

func TestBadTemplatesAreConfigErrors(t *testing.T) {
	cases := map[string]string{
		oneTemplate(`{{ .A `):              `secretrun.yaml:5:16: files.OUT.template: unclosed action`,
		oneTemplate(`{{ nosuchfunc .A }}`): `secretrun.yaml:5:16: files.OUT.template: function "nosuchfunc" not defined`,
		"version: 1\nenvironments: {dev: []}\nfiles:\n  OUT:\n    template: |\n      first line\n      {{ end }}\n": `secretrun.yaml:7:7: files.OUT.template: unexpected {{end}}`,
		"version: 1\nenvironments: {dev: []}\nfiles:\n  OUT: {tmpl: x}\n":                                           `secretrun.yaml:4:9: files.OUT: unknown key "tmpl" (valid keys: template)`,
		"version: 1\nenvironments: {dev: []}\nfiles:\n  OUT: {}\n":                                                  `secretrun.yaml:4:3: files.OUT: missing template:`,
		"version: 1\nenvironments: {dev: []}\nfiles:\n  BAD-NAME: {template: x}\n":                                  `secretrun.yaml:4:3: files: "BAD-NAME" is not a valid variable name`,
		"version: 1\nenvironments: {dev: []}\nfiles: [a]\n":                                                         `secretrun.yaml:3:8: files: must be a mapping`,
	}
	for text, want := range cases {
		_, err := config.Parse("secretrun.yaml", []byte(text))
		var cerr *config.Error
		if !errors.As(err, &cerr) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\ngot  %v\nwant %q", text, err, want)
		}
	}
}

func TestSourceFilesErrors(t *testing.T) {
	base := "version: 1\nproviders: {mem: {type: fake}}\nenvironments:\n  dev:\n    - from: mem\n      path: p\n"
	cases := map[string]string{
		base + "      env: false\n      files: {KEY_FILE: key}\n": `secretrun.yaml:7:12: environments.dev[0].env: env: false keeps this source's variables for templates only`,
		base + "      files: {KEY-FILE: key}\n":                   `environments.dev[0].files: "KEY-FILE" is not a valid variable name`,
		base + "      files: {KEY_FILE: [a]}\n":                   `environments.dev[0].files.KEY_FILE: must name a field of the secret, as a string`,
		base + "      map: {K: key}\n      files: {K: key}\n":     `environments.dev[0].files.K: K is also a variable of this source's map or as`,
		base + "      env: maybe\n":                               `environments.dev[0].env: wrong type`,
	}
	cases[strings.Replace(base, "path: p\n", "path: p\n      files: {PGPASSFILE: pass}\n", 1)+"files:\n  PGPASSFILE: {template: x}\n"] =
		`secretrun.yaml:9:3: files.PGPASSFILE: PGPASSFILE is also a variable of the source at secretrun.yaml:5:7; rename one of them`
	for text, want := range cases {
		_, err := planText(t, text, config.Selection{})
		var cerr *config.Error
		if !errors.As(err, &cerr) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q:\ngot  %v\nwant %q", text, err, want)
		}
	}
}
