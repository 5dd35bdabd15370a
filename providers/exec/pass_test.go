//go:build unix

package exec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
)

// passStore is a throwaway password store with a GnuPG key of its own
// that has no passphrase, as the real `pass` reads them.
type passStore struct {
	env []string
}

func newPassStore(t *testing.T) *passStore {
	t.Helper()
	for _, tool := range []string{"pass", "gpg", "gpgconf"} {
		if _, err := osexec.LookPath(tool); err != nil {
			providertest.Need(t, tool+" (Debian package pass)", err)
		}
	}
	dir := t.TempDir()
	gnupg := filepath.Join(dir, "gnupg")
	if err := os.Mkdir(gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &passStore{env: []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"GNUPGHOME=" + gnupg,
		"PASSWORD_STORE_DIR=" + filepath.Join(dir, "store"),
	}}
	// The agent gpg starts would outlive the test and keep its sockets
	// in the directory being removed.
	t.Cleanup(func() { _ = s.command("gpgconf", "--kill", "all").Run() })
	s.run(t, "", "gpg", "--batch", "--passphrase", "", "--quick-gen-key", "secretrun test <test@example.invalid>", "default", "default", "never")
	s.run(t, "", "pass", "init", "test@example.invalid")
	return s
}

func (s *passStore) command(name string, args ...string) *osexec.Cmd {
	cmd := osexec.Command(name, args...)
	cmd.Env = s.env
	return cmd
}

func (s *passStore) run(t *testing.T, stdin string, name string, args ...string) {
	t.Helper()
	cmd := s.command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// insert stores content as the entry name, exactly: `pass insert -m`
// encrypts what it reads.
func (s *passStore) insert(t *testing.T, name, content string) {
	t.Helper()
	s.run(t, content, "pass", "insert", "--multiline", "--force", name)
}

func (s *passStore) providerEnv() providers.Env {
	return testEnv(s.env[1:]...)
}

const passNotFound = "\nnot_found: {stderr: 'is not in the password store'}\n"

func TestPassRaw(t *testing.T) {
	store := newPassStore(t)
	store.insert(t, "app/db", "v\n")
	store.insert(t, "app/key", "-----BEGIN KEY-----\nline two\n-----END KEY-----\n")
	p := newTest(t, "command: [pass, show]"+passNotFound, store.providerEnv())
	results := fetchAll(t, p,
		src(t, p, "args: [app/db]\nas: DB_PASSWORD"),
		src(t, p, "args: [app/key]\nas: KEY"),
		src(t, p, "args: [app/missing]\nas: MISSING\noptional: true"),
	)
	if got := values(t, results[0])[providers.Plain]; got != "v" {
		t.Errorf("app/db: got %q, want %q", got, "v")
	}
	if got := values(t, results[1])[providers.Plain]; got != "-----BEGIN KEY-----\nline two\n-----END KEY-----" {
		t.Errorf("app/key: got %q", got)
	}
	err := results[2].Err
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), "pass show app/missing") || !strings.Contains(err.Error(), "is not in the password store") {
		t.Errorf("app/missing: error %v, want not found naming the command and quoting pass", err)
	}
}

// Without not_found, a missing entry is an ordinary failure, and pass's
// own message says what happened.
func TestPassFailureQuotesPass(t *testing.T) {
	store := newPassStore(t)
	p := newTest(t, "command: [pass, show]\n", store.providerEnv())
	err := fetchAll(t, p, src(t, p, "args: [nothing/here]\nas: X"))[0].Err
	if err == nil || errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), `exec "tools": pass show nothing/here: exit status 1; stderr: "Error: nothing/here is not in the password store."`) {
		t.Errorf("error %v", err)
	}
}

// The conformance suite, with pass entries that hold a JSON object (as
// teams keep a service's secrets in one entry) and ones that hold dotenv.
func TestPassConformance(t *testing.T) {
	store := newPassStore(t)
	for _, c := range []struct {
		format string
		encode func(t *testing.T, fields map[string]string) string
	}{
		{"json", encodeJSON},
		{"dotenv", encodeDotenv},
	} {
		t.Run(c.format, func(t *testing.T) {
			p := newTest(t, "command: [pass, show]\nformat: "+c.format+passNotFound, store.providerEnv())
			providertest.Run(t, providertest.Backend{
				Provider: p,
				Name:     "tools",
				Put: func(t *testing.T, name string, fields map[string]string) string {
					entry := c.format + "/" + name
					store.insert(t, entry, c.encode(t, fields))
					return "args: [" + entry + "]"
				},
				Missing: func(t *testing.T) string {
					return "args: [" + c.format + "/missing-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "]"
				},
			})
		})
	}
}

func encodeJSON(t *testing.T, fields map[string]string) string {
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// encodeDotenv writes double-quoted values, as `secretrun env --format
// dotenv` does: Go escapes, and $ escaped so that nothing expands.
func encodeDotenv(t *testing.T, fields map[string]string) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# a dotenv entry\n")
	for _, k := range names {
		fmt.Fprintf(&b, "export %s=%s\n", k, strings.ReplaceAll(strconv.Quote(fields[k]), "$", `\$`))
	}
	return b.String()
}
