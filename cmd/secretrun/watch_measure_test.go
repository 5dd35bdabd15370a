//go:build unix

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/all"
	"github.com/secretrun/secretrun/providers/awssm/mototest"
	"github.com/secretrun/secretrun/providers/providertest"
	"github.com/secretrun/secretrun/providers/vault/vaulttest"
)

// TestWatchRotationLatency measures the time from a KV v2 write in a real
// Vault to the restarted child being up with the new value, with a 1s
// interval, over ten rotations, and logs the median. It takes about half a
// minute, so it runs only with SECRETRUN_MEASURE=1:
//
//	SECRETRUN_MEASURE=1 go test ./cmd/secretrun -run TestWatchRotationLatency -v
func TestWatchRotationLatency(t *testing.T) {
	if os.Getenv("SECRETRUN_MEASURE") != "1" {
		t.Skip("a measurement; set SECRETRUN_MEASURE=1")
	}
	v, stop, err := vaulttest.StartVault()
	vaulttest.Need(t, "vault", err)
	defer stop()
	ctx := context.Background()
	put := func(value string) {
		t.Helper()
		if _, err := v.Root.KVv2("secret").Put(ctx, "latency", map[string]any{"API_KEY": value}); err != nil {
			t.Fatal(err)
		}
	}
	put("value-0")

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "secretrun.yaml"), `version: 1
providers:
  vault:
    type: vault
    address: `+v.Addr+`
environments:
  dev:
    - from: vault
      path: secret/latency
watch:
  interval: 1s
`)
	writeFile(t, filepath.Join(dir, "child.sh"), "#!/bin/sh\ntrap 'exit 0' TERM\necho \"API_KEY=$API_KEY\" >> out\nwhile :; do sleep 0.02; done\n")
	if err := os.Chmod(filepath.Join(dir, "child.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("secretrun", "--watch", "--", "./child.sh")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VAULT_TOKEN="+vaulttest.RootToken, "CI=")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	out := filepath.Join(dir, "out")
	waitForLine(t, out, "API_KEY=value-0", 10*time.Second)

	var took []time.Duration
	for i := 1; i <= 10; i++ {
		// Restarts more than twice the interval apart, so that the
		// restart guard never holds one back, and writes at a random
		// point between two polls, as they come in real life.
		time.Sleep(2100*time.Millisecond + rand.N(time.Second))
		start := time.Now()
		put(fmt.Sprintf("value-%d", i))
		waitForLine(t, out, fmt.Sprintf("API_KEY=value-%d", i), 10*time.Second)
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	median := (took[4] + took[5]) / 2
	t.Logf("write to new child up, interval 1s, 10 rotations: median %v, min %v, max %v",
		median.Round(time.Millisecond), took[0].Round(time.Millisecond), took[9].Round(time.Millisecond))
	if took[9] > 2100*time.Millisecond {
		t.Errorf("a rotation took %v, more than the interval with jitter plus a second", took[9])
	}
}

// TestWatchRequestsPerPoll counts the requests one poll sends to each
// backend, through a counting proxy, for 10 and 100 secrets: the watch
// loop makes one Versions call per provider per poll.
func TestWatchRequestsPerPoll(t *testing.T) {
	for _, n := range []int{10, 100} {
		t.Run(fmt.Sprintf("vault/%d", n), func(t *testing.T) {
			v, stop, err := vaulttest.StartVault()
			vaulttest.Need(t, "vault", err)
			defer stop()
			for i := range n {
				if _, err := v.Root.KVv2("secret").Put(context.Background(), fmt.Sprintf("app/s%03d", i), map[string]any{"K": "value"}); err != nil {
					t.Fatal(err)
				}
			}
			proxy, count := countingProxy(t, v.Addr)
			var sources strings.Builder
			for i := range n {
				fmt.Fprintf(&sources, "    - from: vault\n      path: secret/app/s%03d\n      prefix: S%03d_\n", i, i)
			}
			perPoll := requestsPerPoll(t, "providers:\n  vault:\n    type: vault\n    address: "+proxy+"\n", sources.String(),
				map[string]string{"VAULT_TOKEN": vaulttest.RootToken}, count)
			t.Logf("vault, KV v2, %d secrets: %d requests per poll", n, perPoll)
			if perPoll > n+1 {
				t.Errorf("%d requests per poll for %d secrets", perPoll, n)
			}
		})
		t.Run(fmt.Sprintf("aws-secrets-manager/%d", n), func(t *testing.T) {
			srv, err := mototest.Start()
			if err != nil {
				providertest.Need(t, "moto_server", err)
			}
			defer srv.Stop()
			for i := range n {
				srv.CreateString(t, fmt.Sprintf("app/s%03d", i), "value")
			}
			proxy, count := countingProxy(t, srv.URL)
			var sources strings.Builder
			for i := range n {
				fmt.Fprintf(&sources, "    - from: aws\n      secret: app/s%03d\n      as: S%03d\n", i, i)
			}
			env := srv.Env()
			env["AWS_ENDPOINT_URL"] = proxy
			perPoll := requestsPerPoll(t, "providers:\n  aws:\n    type: aws-secrets-manager\n", sources.String(), env, count)
			t.Logf("aws-secrets-manager, %d secrets: %d requests per poll", n, perPoll)
			if want := (n + 9) / 10; perPoll > want {
				t.Errorf("%d requests per poll for %d secrets, want at most %d (ListSecrets, ten names each)", perPoll, n, want)
			}
		})
	}
}

// requestsPerPoll plans the config, fetches once as `secretrun run` does,
// then makes the watch loop's call for each provider twice and returns the
// requests the second one sent: the steady state, after one-time lookups.
func requestsPerPoll(t *testing.T, providersYAML, sources string, env map[string]string, count *atomic.Int64) int {
	t.Helper()
	src := "version: 1\n" + providersYAML + "environments:\n  dev:\n" + sources
	f, err := config.Parse("secretrun.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string { return env[k] }
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	penv := providers.Env{Getenv: getenv, HomeDir: t.TempDir(), Keyring: providertest.NewKeyring(), Stderr: os.Stderr}
	p, err := f.Plan(all.Registry(), config.Selection{Lookup: lookup}, penv)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := inject.Resolve(ctx, p.Sources, p.Providers); err != nil {
		t.Fatal(err)
	}
	var perPoll int
	for range 2 {
		before := count.Load()
		for name, prov := range p.Providers {
			var mine []*providers.Source
			for _, s := range p.Sources {
				if s.Provider == name {
					mine = append(mine, s)
				}
			}
			labels, err := prov.(providers.Versioner).Versions(ctx, mine)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(labels, "") {
				t.Fatalf("%s cannot tell the version of some sources: the watch loop would fetch them", name)
			}
		}
		perPoll = int(count.Load() - before)
	}
	return perPoll
}

func countingProxy(t *testing.T, target string) (string, *atomic.Int64) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

func writeFile(t *testing.T, name, text string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitForLine polls a file for a line, every 2ms, so the measured time is
// not rounded up by much.
func waitForLine(t *testing.T, name, line string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(name); err == nil && slices.Contains(strings.Split(string(b), "\n"), line) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s has no line %q after %v", name, line, limit)
}
