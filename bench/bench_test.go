//go:build linux

package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/secretrun/secretrun/providers/providertest"
)

// testLog sends the harness's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// TestSmoke runs every measurement once at small sizes against the real
// servers, so that the benchmark keeps working as the code it measures
// changes. A server that cannot start skips its part, or fails it under
// CI=true.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds secretrun and starts servers")
	}
	ctx := context.Background()
	h, err := newHarness(ctx, options{smoke: true, runs: 1}, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	rep := &report{opts: h.opts, machine: describeMachine(ctx)}
	if rep.direct, err = h.timeRuns(ctx, []string{"/bin/true"}, baseEnv()); err != nil {
		t.Fatal(err)
	}
	for _, g := range startupGroups {
		t.Run(g.name, func(t *testing.T) {
			skipped, rows := len(rep.skipped), len(rep.startup)
			if err := h.runGroup(ctx, g, rep); err != nil {
				t.Fatal(err)
			}
			if len(rep.skipped) > skipped {
				providertest.Need(t, g.title, rep.skipped[skipped].err)
			}
			for _, row := range rep.startup[rows:] {
				if len(row.s) != 1 || row.s[0] <= 0 {
					t.Errorf("%s: timings %v", row.name, row.s)
				}
				if row.requests != nil && total(row.requests) == 0 {
					t.Errorf("%s: secretrun made no request to the backend", row.name)
				}
			}
			if len(rep.startup) == rows {
				t.Error("no start-up figure")
			}
		})
	}
	t.Run("mask", func(t *testing.T) {
		if rep.mask, err = h.measureMask(ctx); err != nil {
			t.Fatal(err)
		}
		if rep.mask.outBytes == 0 {
			t.Error("secretrun --mask passed no output through")
		}
	})
	t.Run("version", func(t *testing.T) {
		if rep.version, err = h.measureVersion(ctx); err != nil {
			t.Fatal(err)
		}
		if len(rep.version.inits) == 0 {
			t.Error("GODEBUG=inittrace=1 reported no package initialisation")
		}
	})
	t.Run("rotation", func(t *testing.T) {
		if rep.rotation, err = h.measureRotation(ctx); err != nil {
			t.Fatal(err)
		}
		if r := rep.rotation; r.missing != "" {
			t.Log(r.missing)
		}
	})
	t.Run("faults", func(t *testing.T) {
		if rep.faults, err = h.measureFaults(ctx); err != nil {
			t.Fatal(err)
		}
		for _, s := range rep.faults.skipped {
			providertest.Need(t, s.what, s.err)
		}
		for _, row := range rep.faults.rows {
			if len(row.s)+len(row.failed) != 1 {
				t.Errorf("%s, %s: %d runs, want 1", row.backend, row.fault, len(row.s)+len(row.failed))
			}
		}
		if len(rep.faults.rows) == 0 {
			t.Error("no fault recovery figure")
		}
	})
	t.Run("peers", func(t *testing.T) {
		if rep.peers, err = h.measurePeers(ctx); err != nil {
			t.Fatal(err)
		}
		for _, s := range rep.peers.skipped {
			providertest.Need(t, s.what, s.err)
		}
		for _, row := range rep.peers.rows {
			if self := row.results[0]; self.missing != "" || len(self.s) != 1 {
				t.Errorf("%s: secretrun not measured: %s", row.work, self.missing)
			}
			for _, res := range row.results[1:] {
				// A peer that is installed and claims the backend must
				// deliver the secrets, or the configs given to it are wrong.
				if res.failed {
					t.Errorf("%s, %s: %s", row.work, res.tool, res.missing)
				}
				if res.missing == "" && len(res.s) != 1 {
					t.Errorf("%s, %s: %d timings, want 1", row.work, res.tool, len(res.s))
				}
			}
		}
		if len(rep.peers.flat) < 2 {
			t.Errorf("secretrun's memory over polls: %d figures (%s)", len(rep.peers.flat), rep.peers.flatErr)
		}
	})
	t.Run("latency", func(t *testing.T) {
		if rep.latency, err = h.measureLatency(ctx); err != nil {
			t.Fatal(err)
		}
		checkLatency(t, rep.latency)
	})
	md := rep.markdown()
	for _, want := range []string{"## Targets", "## Masking throughput", "## `secretrun version`", "## Side by side with peers", "## Behind 10 ms of latency"} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
}

// checkLatency checks what secretrun did behind the slow proxy: it reached
// every backend, and with credentials given it looked for no others.
func checkLatency(t *testing.T, lr *latencyResult) {
	t.Helper()
	for _, s := range lr.skipped {
		providertest.Need(t, s.what, s.err)
	}
	for _, row := range lr.rows {
		if row.tool != toolSecretrun {
			continue
		}
		if row.missing != "" || len(row.slow) != 1 {
			t.Errorf("%s: secretrun not measured: %s", row.backend, row.missing)
			continue
		}
		// At least the TCP handshake and one request.
		if row.rounds[0] < 2 || row.conns[0] < 1 || row.requests[0] < 1 {
			t.Errorf("%s: %d round trips, %d connections, %d requests", row.backend, row.rounds[0], row.conns[0], row.requests[0])
		}
	}
	if lr.probes.missing != "" {
		providertest.Need(t, "strace", errors.New(lr.probes.missing))
	}
	controlled := false
	for _, r := range lr.probes.rows {
		if r.missing != "" {
			t.Errorf("%s: no trace: %s", r.backend, r.missing)
			continue
		}
		if r.control {
			if !slices.ContainsFunc(r.files, func(f string) bool { return strings.Contains(f, "~/.vault-token (found)") }) {
				t.Errorf("%s without VAULT_TOKEN: the trace shows no read of ~/.vault-token: %q", r.backend, r.files)
			}
			controlled = true
			continue
		}
		if r.metadata != 0 {
			t.Errorf("%s: %d connections to the instance metadata service with credentials given", r.backend, r.metadata)
		}
		for _, c := range r.connects {
			if strings.Contains(c, "not loopback") {
				t.Errorf("%s: connect() to %s", r.backend, c)
			}
		}
		for _, f := range r.files {
			if strings.Contains(f, "/.aws/sso/") || strings.Contains(f, "/.vault-token") {
				t.Errorf("%s: %s with credentials given", r.backend, f)
			}
		}
	}
	if !controlled && len(lr.probes.rows) > 0 {
		t.Error("no control run without VAULT_TOKEN")
	}
}
