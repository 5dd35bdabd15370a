//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/secretrun/secretrun/providers/keyring"
)

// options are the command-line flags.
type options struct {
	smoke bool
	runs  int
	out   string
	only  string
}

// harness owns the servers, the secretrun binary and a temporary directory
// for the length of a benchmark run.
type harness struct {
	opts   options
	log    io.Writer
	root   string // the repository
	dir    string // temporary files: binary, configs, the masking input
	bin    string // secretrun, as `go build` makes it, installed (see installed)
	direct sample // /bin/true run directly, the reference for start-up

	vault     *vaultBackend
	vaultErr  error
	moto      *motoBackend
	motoErr   error
	infisical *infisicalBackend
	infErr    error
	// reference is the first scenario with a start-up target, which the
	// build variants are measured with.
	reference *reference
	// keyringItems is how many items the keyring scenarios stored, to
	// remove when the run ends.
	keyringItems int
	// copies are the installed copies of binaries, by the path they copy.
	copies map[string]string
}

func newHarness(ctx context.Context, o options, log io.Writer) (*harness, error) {
	if o.smoke {
		o.runs = 1
	}
	if o.runs < 1 {
		return nil, errors.New("-runs must be at least 1")
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	dir, err := os.MkdirTemp("", "secretrun-bench-")
	if err != nil {
		return nil, err
	}
	h := &harness{opts: o, log: log, root: root, dir: dir, copies: map[string]string{}}
	h.logf("building secretrun")
	linked := filepath.Join(dir, "secretrun")
	build := exec.CommandContext(ctx, "go", "build", "-o", linked, "./cmd/secretrun")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		h.close()
		return nil, fmt.Errorf("go build ./cmd/secretrun: %w\n%s", err, out)
	}
	if h.bin, err = h.installed(linked); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// installed copies the executable at path into the run's directory, once,
// as cp, tar or a package manager installs a file (with write(2)), and
// returns the copy; every binary the bench times is such a copy. A file as
// the Go linker leaves it (written through a shared mapping) starts up to
// ≈ 1.3 ms slower than a copy of itself, by an amount that differs from one
// linked file to the next (BENCHMARKS.md, Analysis): timed as linked, two
// builds of the same source would differ by that, not by their code.
func (h *harness) installed(path string) (string, error) {
	if c, ok := h.copies[path]; ok {
		return c, nil
	}
	dir := filepath.Join(h.dir, "installed", strconv.Itoa(len(h.copies)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, filepath.Base(path))
	if err := copyExecutable(dst, path); err != nil {
		return "", fmt.Errorf("install %s for timing: %w", path, err)
	}
	h.copies[path] = dst
	return dst, nil
}

func copyExecutable(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (h *harness) close() {
	if h.vault != nil {
		h.vault.stop()
	}
	if h.moto != nil {
		h.moto.stop()
	}
	if h.infisical != nil {
		h.infisical.tb.close()
	}
	for i := range h.keyringItems {
		_ = keyring.OS{}.Delete(keyringService, keyringKey(i))
	}
	os.RemoveAll(h.dir)
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "bench: "+format+"\n", args...)
}

// The servers start on first use, so a run of one group starts only what it
// needs.

func (h *harness) vaultServer() (*vaultBackend, error) {
	if h.vault == nil && h.vaultErr == nil {
		h.logf("starting Vault")
		h.vault, h.vaultErr = startVault()
	}
	return h.vault, h.vaultErr
}

func (h *harness) motoServer() (*motoBackend, error) {
	if h.moto == nil && h.motoErr == nil {
		h.logf("starting moto")
		h.moto, h.motoErr = startMoto()
	}
	return h.moto, h.motoErr
}

func (h *harness) infisicalServer() (*infisicalBackend, error) {
	if h.infisical == nil && h.infErr == nil {
		h.infisical, h.infErr = startInfisical()
	}
	return h.infisical, h.infErr
}

// baseEnv is the environment every command runs with: enough to find
// programs and the session bus, and nothing of the caller's secrets.
func baseEnv() []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	for _, k := range []string{"HOME", "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// writeConfig writes a secretrun.yaml for one scenario and returns its path.
func (h *harness) writeConfig(name, text string) (string, error) {
	p := filepath.Join(h.dir, strings.NewReplacer("/", "-", " ", "-").Replace(name)+".yaml")
	return p, os.WriteFile(p, []byte(text), 0o600)
}

// reference is a scenario kept for measuring other builds of secretrun.
type reference struct {
	name   string
	config string
	env    []string
	target time.Duration
}

// sample is a set of timings.
type sample []time.Duration

// q returns the q-quantile by nearest rank.
func (s sample) q(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	sorted := slices.Clone(s)
	slices.Sort(sorted)
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func (s sample) median() time.Duration {
	if len(s) == 0 {
		return 0
	}
	sorted := slices.Clone(s)
	slices.Sort(sorted)
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// timeCommand runs argv once and returns its wall time, from just before
// fork to the end of wait. stdout is discarded; a failure includes stderr.
func timeCommand(ctx context.Context, argv, env []string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return d, nil
}

// timeRuns times argv: one warm-up run, then h.opts.runs timed ones.
func (h *harness) timeRuns(ctx context.Context, argv, env []string) (sample, error) {
	var s sample
	warm := 1
	if h.opts.smoke {
		warm = 0
	}
	for i := range warm + h.opts.runs {
		d, err := timeCommand(ctx, argv, env)
		if err != nil {
			return nil, err
		}
		if i >= warm {
			s = append(s, d)
		}
	}
	return s, nil
}

// sortedKeys returns m's keys in order, for stable tables.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
