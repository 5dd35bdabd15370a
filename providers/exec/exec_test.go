//go:build unix

package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

// testEnv is the provider environment of a test: PATH from the test's own,
// and only the variables given.
func testEnv(vars ...string) providers.Env {
	environ := append([]string{"PATH=" + os.Getenv("PATH")}, vars...)
	return providers.Env{
		Environ: func() []string { return environ },
		Getenv: func(name string) string {
			v := ""
			for _, kv := range environ {
				if rest, ok := strings.CutPrefix(kv, name+"="); ok {
					v = rest
				}
			}
			return v
		},
	}
}

// tool is the path of a script in testdata.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newTest(t *testing.T, yaml string, env providers.Env) *provider {
	t.Helper()
	p, err := tryNew(yaml, env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func tryNew(yaml string, env providers.Env) (*provider, error) {
	opts, err := config.OptionsFromYAML(yaml)
	if err != nil {
		return nil, err
	}
	return newProvider("tools", opts, env, openTerminal)
}

func src(t *testing.T, p providers.Provider, yaml string) *providers.Source {
	t.Helper()
	s, err := config.SourceFromYAML(p, "tools", yaml)
	if err != nil {
		t.Fatalf("source %q: %v", yaml, err)
	}
	return s
}

func fetchAll(t *testing.T, p providers.Provider, srcs ...*providers.Source) []providers.Result {
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

func values(t *testing.T, r providers.Result) map[string]string {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("source failed: %v", r.Err)
	}
	out := map[string]string{}
	for k, f := range r.Fields {
		out[k] = f.Value.Reveal()
	}
	return out
}

func wantFields(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("field %s missing (have %d fields)", k, len(got))
		} else if g != v {
			t.Errorf("field %s = %q, want %q", k, g, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d fields, want %d", len(got), len(want))
	}
}

func TestJSONFormat(t *testing.T) {
	p := newTest(t, fmt.Sprintf("command: [%s]\nformat: json\n", tool(t, "json-tool")), testEnv())
	r := fetchAll(t, p, src(t, p, "args: [key-from-args]"))[0]
	wantFields(t, values(t, r), map[string]string{
		"API_KEY": "key-from-args",
		"PORT":    "8080",
		"DEBUG":   "true",
		"EMPTY":   "",
		"TLS":     `{"cert":"c","key":"k"}`,
	})
	if !r.Fields["TLS"].Nested || r.Fields["API_KEY"].Nested {
		t.Error("only the object field should be Nested")
	}
}

func TestDotenvFormat(t *testing.T) {
	p := newTest(t, fmt.Sprintf("command: [%s]\nformat: dotenv\n", tool(t, "dotenv-tool")), testEnv("NOT_EXPANDED=from-the-environment"))
	r := fetchAll(t, p, src(t, p, ""))[0]
	wantFields(t, values(t, r), map[string]string{
		"DB_USER":     "app",
		"DB_PASSWORD": "single $quoted",
		"DB_URL":      "postgres://app@db/app?sslmode=require",
		"CERT":        "-----BEGIN CERT-----\nline two\n-----END CERT-----",
		"ESCAPED":     "a\nb $NOT_EXPANDED",
		"REFERENCE":   "app-suffix",
	})
}

func TestRawFormat(t *testing.T) {
	p := newTest(t, "command: [printenv]\n", testEnv("ONE_LINE=plain value", "MULTI=line one\nline two\n", "CRLF=windows\r"))
	results := fetchAll(t, p,
		src(t, p, "args: [ONE_LINE]\nas: A"),
		src(t, p, "args: [MULTI]\nas: B"),
		src(t, p, "args: [CRLF]\nas: C"),
	)
	for i, want := range []string{"plain value", "line one\nline two\n", "windows"} {
		got := values(t, results[i])[providers.Plain]
		if got != want {
			t.Errorf("source %d: got %q, want %q (one trailing newline removed)", i, got, want)
		}
	}
}

// A source may read its output in another format than the provider's.
func TestSourceFormatOverrides(t *testing.T) {
	p := newTest(t, "command: [printenv]\n", testEnv(`AS_JSON={"K":"v-json"}`))
	r := fetchAll(t, p, src(t, p, "args: [AS_JSON]\nformat: json"))[0]
	wantFields(t, values(t, r), map[string]string{"K": "v-json"})
}

func TestProviderEnvironmentOnly(t *testing.T) {
	t.Setenv("EXEC_TEST_PROCESS_ONLY", "from-the-process")
	p := newTest(t, "command: [printenv]\n", testEnv("EXEC_TEST_PROVIDER=from-the-provider"))
	results := fetchAll(t, p,
		src(t, p, "args: [EXEC_TEST_PROVIDER]\nas: A"),
		src(t, p, "args: [EXEC_TEST_PROCESS_ONLY]\nas: B"),
	)
	if got := values(t, results[0])[providers.Plain]; got != "from-the-provider" {
		t.Errorf("the program did not get the provider's environment: %q", got)
	}
	if results[1].Err == nil {
		t.Error("the program saw a variable of the process that the provider environment does not have")
	}
}

func TestStdinIsEmpty(t *testing.T) {
	p := newTest(t, "command: [cat]\nformat: dotenv\ntimeout: 5s\n", testEnv())
	start := time.Now()
	r := fetchAll(t, p, src(t, p, ""))[0]
	if len(values(t, r)) != 0 || time.Since(start) > 4*time.Second {
		t.Errorf("cat read something from stdin, or waited for it")
	}
}

func TestSameCommandLineRunsOnce(t *testing.T) {
	p := newTest(t, fmt.Sprintf("command: [%s]\n", tool(t, "pid")), testEnv())
	results := fetchAll(t, p, src(t, p, "as: A"), src(t, p, "as: B"), src(t, p, "args: [x]\nas: C"))
	a, b, c := values(t, results[0])[""], values(t, results[1])[""], values(t, results[2])[""]
	if a != b {
		t.Error("two sources with the same command line ran it twice")
	}
	if a == c {
		t.Error("sources with different args shared one run")
	}
}

func TestFailingToolQuotesStderr(t *testing.T) {
	p := newTest(t, fmt.Sprintf("command: [%s]\n", tool(t, "fail")), testEnv())
	s := src(t, p, "args: ['7']\nas: X")
	err := fetchAll(t, p, s)[0].Err
	if err == nil {
		t.Fatal("a failing program succeeded")
	}
	msg := err.Error()
	for _, want := range []string{`exec "tools"`, s.Ref.String(), "exit status 7", `stderr: "error: could not reach the vault at https://vault.example.invalid"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if errors.Is(err, providers.ErrNotFound) {
		t.Error("a failure is not ErrNotFound unless not_found says so")
	}
}

func TestNotFound(t *testing.T) {
	for _, nf := range []string{"{exit_codes: [7]}", `{stderr: "could not reach"}`} {
		p := newTest(t, fmt.Sprintf("command: [%s]\nnot_found: %s\n", tool(t, "fail"), nf), testEnv())
		results := fetchAll(t, p, src(t, p, "args: ['7']\nas: X"), src(t, p, "args: ['8']\nas: Y"))
		if !errors.Is(results[0].Err, providers.ErrNotFound) {
			t.Errorf("not_found %s: %v does not wrap ErrNotFound", nf, results[0].Err)
		}
		if strings.Contains(nf, "exit_codes") && errors.Is(results[1].Err, providers.ErrNotFound) {
			t.Errorf("not_found %s: exit status 8 counted as not found", nf)
		}
	}
}

// The program's stderr repeats the value it printed and a value another
// source read: neither may reach the message.
func TestStderrIsMasked(t *testing.T) {
	own := "own-value-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	other := "other-value-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	env := testEnv("OWN="+own, "OTHER="+other)
	// Status 1 fails; with status 0 the output does not parse as dotenv.
	for _, leaky := range []string{"args: ['1']", "args: ['0']\nformat: dotenv"} {
		p := newTest(t, fmt.Sprintf("command: [%s]\nformat: json\n", tool(t, "leak")), env)
		results := fetchAll(t, p, src(t, p, "args: [print]\nformat: raw\nas: OTHER"), src(t, p, leaky))
		if results[0].Err != nil {
			t.Fatal(results[0].Err)
		}
		err := results[1].Err
		if err == nil {
			t.Fatalf("%s: the leaky program succeeded", leaky)
		}
		msg := err.Error()
		if strings.Contains(msg, own) || strings.Contains(msg, other) {
			t.Errorf("%s: the message shows a value: %q", leaky, msg)
		}
		if !strings.Contains(msg, "debug: got token=*****") || !strings.Contains(msg, "the other one is *****") || !strings.Contains(msg, "error: gave up") {
			t.Errorf("%s: stderr not quoted, masked: %q", leaky, msg)
		}
	}
}

// A value read by an earlier Fetch is masked too: with watch on, a tool
// that starts failing may print the last value it gave.
func TestStderrMasksValuesOfTheLastFetch(t *testing.T) {
	value := "earlier-value-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	p := newTest(t, "command: [sh, -c]\n", testEnv("V="+value))
	fetchAll(t, p, src(t, p, `args: ['printf %s "$V"']`+"\nas: V"))
	err := fetchAll(t, p, src(t, p, `args: ['echo "was $V" >&2; exit 1']`+"\nas: X"))[0].Err
	if err == nil || strings.Contains(err.Error(), value) || !strings.Contains(err.Error(), "was *****") {
		t.Errorf("error %v: want the earlier value masked", err)
	}
}

func TestTimeoutKillsTheToolAndItsChildren(t *testing.T) {
	p := newTest(t, fmt.Sprintf("command: [%s]\ntimeout: 300ms\n", tool(t, "hang")), testEnv())
	s := src(t, p, "as: X")
	start := time.Now()
	err := fetchAll(t, p, s)[0].Err
	if took := time.Since(start); took > 300*time.Millisecond+waitDelay+2*time.Second {
		t.Errorf("Fetch took %s with a 300ms timeout", took)
	}
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), s.Ref.String()) {
		t.Fatalf("error %v: want a timeout naming the command", err)
	}
	m := regexp.MustCompile(`child (\d+)`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error %q does not quote the child's pid from stderr", err)
	}
	pid, _ := strconv.Atoi(m[1])
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the tool's child %d still runs after the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs; a zombie waiting for its new parent to
// reap it does not.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestOversizedOutput(t *testing.T) {
	p := newTest(t, fmt.Sprintf("command: [%s]\ntimeout: 20s\n", tool(t, "big")), testEnv())
	results := fetchAll(t, p,
		src(t, p, fmt.Sprintf("args: ['%d']\nas: A", MaxOutput)),
		src(t, p, fmt.Sprintf("args: ['%d']\nas: B", MaxOutput+1)),
	)
	if got := values(t, results[0])[""]; len(got) != MaxOutput {
		t.Errorf("output of exactly MaxOutput bytes: got %d bytes", len(got))
	}
	if err := results[1].Err; err == nil || !strings.Contains(err.Error(), "printed more than 1024 KiB on stdout") {
		t.Errorf("output over MaxOutput: error %v", err)
	}
}

// A program that never stops printing is stopped, not waited for.
func TestEndlessOutputIsStopped(t *testing.T) {
	p := newTest(t, "command: [yes]\ntimeout: 20s\n", testEnv())
	start := time.Now()
	err := fetchAll(t, p, src(t, p, "as: Y"))[0].Err
	if err == nil || !strings.Contains(err.Error(), "printed more than") {
		t.Errorf("error %v: want the output limit", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("stopping a program that prints forever took %s", took)
	}
}

func TestUnparsableOutputNamesTheProblemNotTheText(t *testing.T) {
	secret := "do-not-print-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	p := newTest(t, "command: [printenv]\n", testEnv(
		`BAD_JSON={"K": "`+secret+`"`,
		`NOT_OBJECT=["`+secret+`"]`,
		`BAD_DOTENV=K="`+secret,
		`NOT_A_NAME=`+secret+`=x`,
		`NO_NAME==`+secret,
		`NUL_FREE=x`,
	))
	cases := []struct{ source, want string }{
		{"args: [BAD_JSON]\nformat: json", "not valid JSON"},
		{"args: [NOT_OBJECT]\nformat: json", "not a JSON object"},
		{"args: [BAD_DOTENV]\nformat: dotenv", "a quoted value is not terminated"},
		{"args: [NOT_A_NAME]\nformat: dotenv", "a line does not start with a variable name and ="},
		{"args: [NO_NAME]\nformat: dotenv", "a line has no variable name"},
		{"args: [MISSING_VAR]\nformat: raw\nas: X", "exit status 1"},
	}
	for _, c := range cases {
		s := src(t, p, c.source)
		err := fetchAll(t, p, s)[0].Err
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), s.Ref.String()) {
			t.Errorf("%s: error %v, want %q and the command line", c.source, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the output: %v", c.source, err)
		}
	}
}

func TestCommandNotFound(t *testing.T) {
	p := newTest(t, "command: [secretrun-no-such-tool, get]\n", testEnv())
	_, err := p.Fetch(context.Background(), []*providers.Source{src(t, p, "as: X")})
	if err == nil || !strings.Contains(err.Error(), `command "secretrun-no-such-tool": not found in PATH`) {
		t.Errorf("error %v", err)
	}
	// The provider's PATH is searched, not the process's.
	p = newTest(t, "command: [printenv]\n", providers.Env{Environ: func() []string { return []string{"PATH=/nonexistent"} }})
	if _, err := p.Fetch(context.Background(), []*providers.Source{src(t, p, "as: X")}); err == nil {
		t.Error("printenv was found outside the provider's PATH")
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	// Eight sources that each sleep 300ms, two at a time: at least 1.2s.
	p := newTest(t, "command: [sleep]\nformat: dotenv\nmax_concurrency: 2\n", testEnv())
	var srcs []*providers.Source
	for i := range 8 {
		srcs = append(srcs, src(t, p, fmt.Sprintf("args: ['0.3%d']", i)))
	}
	start := time.Now()
	for _, r := range fetchAll(t, p, srcs...) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if took := time.Since(start); took < 1200*time.Millisecond {
		t.Errorf("8 runs of 300ms, 2 at a time, took %s", took)
	}
}

func TestCanceledContext(t *testing.T) {
	p := newTest(t, "command: [printenv]\n", testEnv())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Fetch(ctx, []*providers.Source{src(t, p, "args: [PATH]\nas: X")}); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v", err)
	}
}

func TestSettingsErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"format: json\n", "missing `command:`"},
		{"command: 'pass show'\n", "sequence is expected"},
		{"command: ['pass show']\n", "no shell splits it"},
		{"command: [pass]\nformat: yaml\n", `unknown format "yaml"`},
		{"command: [pass]\ntimeout: -1s\n", "timeout must be a positive duration"},
		{"command: [pass]\ntimeout: soon\n", "timeout"},
		{"command: [pass]\ninteractive: true\nmax_concurrency: 2\n", "one source at a time"},
		{"command: [pass]\nnot_found: {}\n", "not_found needs exit_codes or stderr"},
		{"command: [pass]\nnot_found: {stderr: '('}\n", "not a regular expression"},
		{"command: [pass]\nnot_found: {exit_codes: [0]}\n", "not a failing exit status"},
		{"command: [pass]\ncomand: [x]\n", `unknown key "comand"`},
	}
	for _, c := range cases {
		_, err := tryNew(c.yaml, testEnv())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.want)
		}
	}
}

func TestSourceErrors(t *testing.T) {
	raw := newTest(t, "command: [pass, show]\n", testEnv())
	json := newTest(t, "command: [op, item, get]\nformat: json\n", testEnv())
	cases := []struct {
		p          *provider
		yaml, want string
	}{
		{raw, "args: [x]", "name its variable with `as:`"},
		{json, "args: [x]\nas: X", "`as` names the one value of format raw"},
		{raw, "args: [x]\nas: X\nversion: 2", "`version` does not apply"},
		{raw, "args: x\nas: X", "sequence is expected"},
		{raw, "args: [x]\nas: X\nargz: [y]", `unknown key "argz"`},
		{json, "args: [x]\nformat: xml", `unknown format "xml"`},
	}
	for _, c := range cases {
		_, err := config.SourceFromYAML(c.p, "tools", c.yaml)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.want)
		}
	}
}

// A config error is reported at its place in the file.
func TestConfigErrorsHaveAPosition(t *testing.T) {
	f, err := config.Parse("secretrun.yaml", []byte(`version: 1
providers:
  pass:
    type: exec
    command: [pass, show]
environments:
  dev:
    - from: pass
      args: [app/db]
`))
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	reg.Register(Type())
	_, err = f.Plan(reg, config.Selection{Environment: "dev"}, testEnv())
	if err == nil || !strings.HasPrefix(err.Error(), "secretrun.yaml:8:") || !strings.Contains(err.Error(), "`as:`") {
		t.Errorf("error %v, want secretrun.yaml:8:… asking for as:", err)
	}
}

func TestRefString(t *testing.T) {
	r := ref{argv: []string{"op", "read", "op://vault/item/field", "with space", ""}}
	if got, want := r.String(), `op read op://vault/item/field "with space" ""`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestMaskerMasksLinesAndEscapedForms(t *testing.T) {
	m := newMasker([]string{"line-one\nline-two\n", `quo"ted-value`, "abc", "secret-longer", "secret"})
	in := `line-one / line-two / quo\"ted-value / abc / secret-longer / secret`
	want := `***** / ***** / ***** / abc / ***** / *****`
	if got := m.mask(in); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestResultsPrintRedacted(t *testing.T) {
	p := newTest(t, "command: [printenv]\n", testEnv("R=redact-me-please"))
	r := fetchAll(t, p, src(t, p, "args: [R]\nas: R"))[0]
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if strings.Contains(fmt.Sprintf(verb, r), "redact-me-please") {
			t.Errorf("%s shows the value", verb)
		}
	}
}

// Placeholders and ${VAR} reach the command line, as any value of the
// config.
func TestPlaceholdersInCommandAndArgs(t *testing.T) {
	f, err := config.Parse("secretrun.yaml", []byte(`version: 1
providers:
  sops:
    type: exec
    command: [sops, --decrypt, --config, "${SOPS_CONF}"]
    format: dotenv
environments:
  dev:
    - from: sops
      args: ["secrets/{env}/{scope}.enc.env"]
`))
	if err != nil {
		t.Fatal(err)
	}
	reg := providers.NewRegistry()
	reg.Register(Type())
	lookup := func(name string) (string, bool) {
		return map[string]string{"SOPS_CONF": "sops.yaml"}[name], name == "SOPS_CONF"
	}
	plan, err := f.Plan(reg, config.Selection{Environment: "dev", Scope: "api", Lookup: lookup}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := plan.Sources[0].Ref.String(), "sops --decrypt --config sops.yaml secrets/dev/api.enc.env"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
