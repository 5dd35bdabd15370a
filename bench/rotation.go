//go:build linux

package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// rotationResult is the time from writing a new version of a secret to the
// restarted child running with it, under `secretrun run --watch`.
type rotationResult struct {
	// missing says why nothing was measured.
	missing  string
	backend  string
	interval time.Duration
	s        sample
	// requests per poll of the running watch loop, by endpoint.
	pollRequests map[string]int
	polls        int
}

// hasWatch reports whether the built secretrun has `run --watch`.
func (h *harness) hasWatch(ctx context.Context) (bool, error) {
	out, err := exec.CommandContext(ctx, h.bin, "run", "--help").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("secretrun run --help: %w: %s", err, out)
	}
	return strings.Contains(string(out), "--watch"), nil
}

func (h *harness) measureRotation(ctx context.Context) (*rotationResult, error) {
	ok, err := h.hasWatch(ctx)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &rotationResult{missing: "`secretrun run` has no `--watch` flag in this build: rotation latency is not measured."}, nil
	}
	v, err := h.vaultServer()
	if err != nil {
		return &rotationResult{missing: fmt.Sprintf("Vault could not start: %v", err)}, nil
	}
	const path = "bench/rotation"
	interval := time.Second
	rotations := 10
	if h.opts.smoke {
		interval, rotations = 200*time.Millisecond, 1
	}
	put := func(gen int) error {
		_, err := v.Root.KVv2("secret").Put(ctx, path, map[string]any{"GENERATION": fmt.Sprint(gen), "TOKEN": randomValue()})
		return err
	}
	if err := put(0); err != nil {
		return nil, err
	}
	cfg, err := h.writeConfig("rotation", fmt.Sprintf(
		"version: 1\nproviders:\n  vault:\n    type: vault\n    address: %s\nenvironments:\n  bench:\n    - from: vault\n      path: secret/%s\nwatch:\n  interval: %s\n  on_change: restart\n  stop_timeout: 5s\n",
		v.proxy.url, path, interval))
	if err != nil {
		return nil, err
	}
	w, err := h.startWatched(ctx, cfg, append(baseEnv(), "VAULT_TOKEN=root"), generationChild...)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	if _, err := w.waitGeneration(0, 30*time.Second); err != nil {
		return nil, err
	}
	// Rotations start once the watch loop has polled since the start, so
	// that they measure a loop in its steady state.
	metadataBefore := metadataReads(v.proxy.counts())
	for deadline := time.Now().Add(30 * time.Second); metadataReads(v.proxy.counts()) == metadataBefore; {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the watch loop read no metadata within 30s: %s", w.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	res := &rotationResult{backend: "Vault KV v2", interval: interval}
	// secretrun holds back a restart that follows the previous one within
	// twice max(interval, 1s), as protection against a flapping secret;
	// rotations are spaced further apart than that, so that each one
	// measures an ordinary restart.
	calm := 2*max(interval, time.Second) + 500*time.Millisecond
	for gen := 1; gen <= rotations; gen++ {
		if gen > 1 {
			time.Sleep(calm)
		}
		w.drain(nil)
		t0 := time.Now()
		if err := put(gen); err != nil {
			return nil, err
		}
		got, err := w.waitGeneration(gen, 10*interval+30*time.Second)
		if err != nil {
			return nil, err
		}
		res.s = append(res.s, got.at.Sub(t0))
	}
	// Idle polls, to count what a poll costs when nothing changes: the
	// requests are grouped into polls by the quiet time between them.
	idleFrom := time.Now()
	time.Sleep(5*interval + interval/2)
	polls, _ := v.proxy.bursts(idleFrom, interval/4)
	if len(polls) > 1 {
		// The first may be the tail of the last rotation's re-read.
		polls = polls[1:]
		res.polls = len(polls)
		per := map[string]int{}
		for _, poll := range polls {
			for k, n := range poll {
				per[k] += n
			}
		}
		for k, n := range per {
			per[k] = (n + res.polls/2) / res.polls
		}
		res.pollRequests = per
	}
	return res, nil
}

func metadataReads(counts map[string]int) int {
	n := 0
	for k, c := range counts {
		if strings.Contains(k, "/metadata/") {
			n += c
		}
	}
	return n
}
