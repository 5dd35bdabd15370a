package inject_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/providers/providertest"
)

// These tests run real children, sh scripts, that read their memory-only
// files by path, against the in-memory fake backend.

// outputBuffer is a child's output, written by the copying goroutine and
// read by the test.
type outputBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *outputBuffer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *outputBuffer) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor waits up to ten seconds for the output to match re.
func (o *outputBuffer) waitFor(t *testing.T, re string) []string {
	t.Helper()
	pattern := regexp.MustCompile(re)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := pattern.FindStringSubmatch(o.String()); m != nil {
			return m
		}
	}
	t.Fatalf("no output matching %q after 10s; the child wrote:\n%s", re, o.String())
	return nil
}

func randomValue(t *testing.T, prefix string) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

const filesConfig = `version: 1
providers: {mem: {type: fake}}
environments:
  dev:
    - from: mem
      path: tls
      files: {TLS_CERT_FILE: cert, TLS_KEY_FILE: key}
    - from: mem
      path: db
      env: false
files:
  PGPASSFILE:
    template: "127.0.0.1:5432:app:{{ .DB_USER }}:{{ .DB_PASSWORD }}\n"
`

type fileRun struct {
	job    inject.Job
	mem    *providertest.Fake
	stdout *outputBuffer
	stderr *outputBuffer
	done   chan result
}

type result struct {
	status int
	err    error
}

// newFileRun plans text against the fake backend and prepares a
// supervised run of script with sh.
func newFileRun(t *testing.T, text, script string) *fileRun {
	t.Helper()
	p, mem, _ := setup(t, text)
	r := &fileRun{mem: mem, stdout: &outputBuffer{}, stderr: &outputBuffer{}, done: make(chan result, 1)}
	r.job = inject.Job{
		Args:        []string{"sh", "-c", script},
		Sources:     p.Sources,
		Providers:   p.Providers,
		Templates:   templatesOf(p),
		Environ:     []string{"PATH=" + os.Getenv("PATH")},
		Stdout:      r.stdout,
		Stderr:      r.stderr,
		NoExec:      true,
		StopSignal:  syscall.SIGTERM,
		StopTimeout: 5 * time.Second,
	}
	return r
}

func templatesOf(p *config.Plan) []inject.Template {
	var out []inject.Template
	for _, t := range p.Files {
		out = append(out, t)
	}
	return out
}

func (r *fileRun) start() {
	go func() {
		st, err := inject.Run(context.Background(), r.job)
		r.done <- result{st, err}
	}()
}

func (r *fileRun) wait(t *testing.T) result {
	t.Helper()
	select {
	case res := <-r.done:
		return res
	case <-time.After(20 * time.Second):
		t.Fatalf("the run did not end; stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		return result{}
	}
}

func TestFilesReachTheChildAndNotItsEnvironment(t *testing.T) {
	key, password := randomValue(t, "key-"), randomValue(t, "pw-")
	r := newFileRun(t, filesConfig, `
		echo "key=$(cat "$TLS_KEY_FILE")"
		echo "cert=$(cat "$TLS_CERT_FILE")"
		echo "pgpass=$(cat "$PGPASSFILE")"
		echo "mode=$(stat -L -c %a "$TLS_KEY_FILE") $(stat -L -c %a "$PGPASSFILE")"
		echo "link=$(readlink "/proc/$$/fd/${TLS_KEY_FILE##*/}")"
		echo "environ=$(base64 -w0 < /proc/$$/environ)"
		echo "paths=$TLS_KEY_FILE $PGPASSFILE"
	`)
	r.mem.Set("tls", map[string]string{"cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "key": key})
	r.mem.Set("db", map[string]string{"DB_USER": "app", "DB_PASSWORD": password})
	st, err := inject.Run(context.Background(), r.job)
	if err != nil || st != 0 {
		t.Fatalf("status %d, %v; stderr: %s", st, err, r.stderr)
	}
	out := r.stdout.String()
	for _, want := range []string{
		"key=" + key + "\n",
		"cert=-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		"pgpass=127.0.0.1:5432:app:app:" + password + "\n",
		"mode=400 400\n",
		"link=/memfd:TLS_KEY_FILE (deleted)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the child did not write %q; it wrote:\n%s", want, out)
		}
	}
	if m := regexp.MustCompile(`paths=/dev/fd/(\d+) /dev/fd/(\d+)`).FindStringSubmatch(out); m == nil {
		t.Errorf("the variables do not hold /dev/fd paths:\n%s", out)
	}
	m := regexp.MustCompile(`environ=(\S*)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no environ in:\n%s", out)
	}
	environ, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, leaked := range []string{key, password, "DB_USER=", "DB_PASSWORD=", "BEGIN CERTIFICATE"} {
		if bytes.Contains(environ, []byte(leaked)) {
			t.Errorf("the child's environment holds %q", strings.TrimSuffix(leaked[:4], "=")+"...")
		}
	}
	if !bytes.Contains(environ, []byte("TLS_KEY_FILE=/dev/fd/")) {
		t.Errorf("the child's environment has no TLS_KEY_FILE path")
	}
}

// The child re-reads its files on SIGHUP, as a server reloading its
// certificate does: it gets the new contents, with no restart.
func TestRotationRewritesFilesBeforeTheSignal(t *testing.T) {
	r := newFileRun(t, filesConfig, `
		trap 'echo "hup pid=$$ key=$(cat "$TLS_KEY_FILE") pgpass=$(cat "$PGPASSFILE")"; exit 0' HUP
		echo "start pid=$$ key=$(cat "$TLS_KEY_FILE")"
		while :; do sleep 0.02; done
	`)
	r.job.Watch = &inject.Watch{Interval: 100 * time.Millisecond, OnChange: inject.ActionSignal, Signal: syscall.SIGHUP}
	r.mem.Set("tls", map[string]string{"cert": "c", "key": "first-key"})
	r.mem.Set("db", map[string]string{"DB_USER": "app", "DB_PASSWORD": "first-pw"})
	r.start()
	started := r.stdout.waitFor(t, `start pid=(\d+) key=first-key\n`)

	r.mem.Set("tls", map[string]string{"cert": "c", "key": "second-key"})
	r.mem.Set("db", map[string]string{"DB_USER": "app", "DB_PASSWORD": "second-pw"})
	res := r.wait(t)
	if res.err != nil || res.status != 0 {
		t.Fatalf("status %d, %v; stderr: %s", res.status, res.err, r.stderr)
	}
	hup := r.stdout.waitFor(t, `hup pid=(\d+) key=(.*) pgpass=(.*)\n`)
	if hup[1] != started[1] {
		t.Errorf("pid %s after the signal, %s before: the child was restarted", hup[1], started[1])
	}
	// One rotation may carry both secrets or only the first: the files
	// must hold all of what was rotated when the signal came.
	if hup[2] != "second-key" {
		t.Errorf("after SIGHUP the key file holds %q, want second-key", hup[2])
	}
	if hup[3] != "127.0.0.1:5432:app:app:second-pw" && hup[3] != "127.0.0.1:5432:app:app:first-pw" {
		t.Errorf("after SIGHUP the template holds %q", hup[3])
	}
}

func TestRestartedChildReadsNewFiles(t *testing.T) {
	r := newFileRun(t, filesConfig, `
		key=$(cat "$TLS_KEY_FILE")
		echo "pid=$$ path=$TLS_KEY_FILE key=$key"
		[ "$key" = second-key ] && exit 0
		trap 'exit 0' TERM
		while :; do sleep 0.02; done
	`)
	r.job.Watch = &inject.Watch{Interval: 100 * time.Millisecond, OnChange: inject.ActionRestart}
	r.mem.Set("tls", map[string]string{"cert": "c", "key": "first-key"})
	r.mem.Set("db", map[string]string{"DB_USER": "app", "DB_PASSWORD": "pw"})
	r.start()
	first := r.stdout.waitFor(t, `pid=(\d+) path=(\S+) key=first-key\n`)
	r.mem.Set("tls", map[string]string{"cert": "c", "key": "second-key"})
	if res := r.wait(t); res.err != nil || res.status != 0 {
		t.Fatalf("status %d, %v; stderr: %s", res.status, res.err, r.stderr)
	}
	second := r.stdout.waitFor(t, `pid=(\d+) path=(\S+) key=second-key\n`)
	if second[1] == first[1] {
		t.Errorf("the same pid %s read the new key: no restart", first[1])
	}
	if second[2] != first[2] {
		t.Errorf("the path moved from %s to %s", first[2], second[2])
	}
}

// With on_change: none the child is left alone, but its files change: a
// program that re-reads them on its own picks the new value up.
func TestOnChangeNoneStillRewritesFiles(t *testing.T) {
	r := newFileRun(t, filesConfig, `
		echo "start key=$(cat "$TLS_KEY_FILE")"
		while [ "$(cat "$TLS_KEY_FILE")" = first-key ]; do sleep 0.02; done
		echo "now key=$(cat "$TLS_KEY_FILE")"
	`)
	r.job.Watch = &inject.Watch{Interval: 100 * time.Millisecond, OnChange: inject.ActionNone}
	r.mem.Set("tls", map[string]string{"cert": "c", "key": "first-key"})
	r.mem.Set("db", map[string]string{"DB_USER": "app", "DB_PASSWORD": "pw"})
	r.start()
	r.stdout.waitFor(t, `start key=first-key\n`)
	r.mem.Set("tls", map[string]string{"cert": "c", "key": "second-key"})
	if res := r.wait(t); res.err != nil || res.status != 0 {
		t.Fatalf("status %d, %v; stderr: %s", res.status, res.err, r.stderr)
	}
	r.stdout.waitFor(t, `now key=second-key\n`)
}

func TestLargeSecrets(t *testing.T) {
	const text = `version: 1
providers: {mem: {type: fake}}
environments:
  dev:
    - from: mem
      path: big
`
	big := strings.Repeat("x", 200_000)

	t.Run("as a variable, a clear error before anything starts", func(t *testing.T) {
		r := newFileRun(t, text, `echo started`)
		r.mem.Set("big", map[string]string{"BUNDLE": big})
		_, err := inject.Run(context.Background(), r.job)
		want := "secretrun.yaml:5:7: BUNDLE is 200007 bytes (NAME=value), over the 131072 bytes Linux allows one environment variable"
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "files: {BUNDLE_FILE: BUNDLE}") {
			t.Fatalf("got %v\nwant it to contain %q and suggest files:", err, want)
		}
		if strings.Contains(err.Error(), "xxxxxxxx") {
			t.Error("the error holds the value")
		}
		if out := r.stdout.String(); out != "" {
			t.Errorf("the child started: %q", out)
		}
	})

	t.Run("as files, 200 KB and 1 MiB", func(t *testing.T) {
		mib := strings.Repeat("0123456789abcdef", 1<<16)
		r := newFileRun(t, text+"      files: {BUNDLE_FILE: BUNDLE, HUGE_FILE: HUGE}\n", `
			echo "bundle=$(wc -c < "$BUNDLE_FILE") huge=$(wc -c < "$HUGE_FILE") sum=$(md5sum < "$HUGE_FILE" | cut -c1-32)"
		`)
		r.mem.Set("big", map[string]string{"BUNDLE": big, "HUGE": mib})
		if st, err := inject.Run(context.Background(), r.job); err != nil || st != 0 {
			t.Fatalf("status %d, %v; stderr: %s", st, err, r.stderr)
		}
		want := fmt.Sprintf("bundle=200000 huge=%d sum=%s\n", len(mib), md5hex(mib))
		if got := r.stdout.String(); got != want {
			t.Errorf("the child read %q, want %q", got, want)
		}
	})

	t.Run("an environment over the total limit", func(t *testing.T) {
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_STACK, &rl); err != nil {
			t.Fatal(err)
		}
		// Many variables, each under the per-variable limit, over the
		// total: a quarter of the stack limit, at most 6 MiB.
		total := min(rl.Cur/4, 6<<20)
		fields := map[string]string{}
		for i := range int(total/100_000) + 2 {
			fields[fmt.Sprintf("PART_%02d", i)] = strings.Repeat("y", 100_000)
		}
		r := newFileRun(t, text, `echo started`)
		r.mem.Set("big", fields)
		_, err := inject.Run(context.Background(), r.job)
		if err == nil || !strings.Contains(err.Error(), "the command's arguments and environment are") || !strings.Contains(err.Error(), "PART_") {
			t.Fatalf("got %v, want the total named with the largest secrets", err)
		}
		if out := r.stdout.String(); out != "" {
			t.Errorf("the child started: %q", out)
		}
	})
}

func TestTemplateWithMissingVariableStartsNothing(t *testing.T) {
	r := newFileRun(t, filesConfig, `echo started`)
	r.mem.Set("tls", map[string]string{"cert": "c", "key": "k"})
	r.mem.Set("db", map[string]string{"DB_USER": "app", "DB_PASS": "typo"})
	_, err := inject.Run(context.Background(), r.job)
	want := "secretrun.yaml:13:53: files.PGPASSFILE.template: {{ .DB_PASSWORD }}: no variable DB_PASSWORD in this environment (defined: DB_PASS, DB_USER)"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	if out := r.stdout.String(); out != "" {
		t.Errorf("the child started: %q", out)
	}
}

func TestAssembleFilesAndTemplateOnly(t *testing.T) {
	p, mem, _ := setup(t, filesConfig)
	mem.Set("tls", map[string]string{"cert": "the-cert", "key": "the-key", "extra": "not selected"})
	mem.Set("db", map[string]string{"DB_USER": "app", "DB_PASSWORD": "pw"})
	s, err := resolve(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := inject.RenderFiles(s, templatesOf(p)); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, v := range s.Vars {
		kind := "variable"
		switch {
		case v.File:
			kind = "file"
		case v.Hidden:
			kind = "template-only"
		}
		kinds[v.Name] = kind + "=" + v.Value.Reveal()
	}
	want := map[string]string{
		"TLS_CERT_FILE": "file=the-cert", "TLS_KEY_FILE": "file=the-key",
		"DB_USER": "template-only=app", "DB_PASSWORD": "template-only=pw",
		"PGPASSFILE": "file=127.0.0.1:5432:app:app:pw\n",
	}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("got  %v\nwant %v (files: selects only its fields)", kinds, want)
	}
	env := inject.Environ([]string{"DB_USER=from-parent"}, s.Vars, false)
	if got := strings.Join(env, " "); got != "DB_USER=from-parent TLS_CERT_FILE= TLS_KEY_FILE= PGPASSFILE=" {
		t.Errorf("environment %q: a template-only variable must not replace the parent's, and a file's variable holds its path (none yet)", got)
	}
}

func md5hex(s string) string { return fmt.Sprintf("%x", md5.Sum([]byte(s))) }
