//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
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
	metadataBefore := metadataReads(v.proxy.counts())
	// The child prints the non-secret generation field, so that a restart
	// with new values is seen without any secret value being printed.
	cmd := exec.CommandContext(ctx, h.bin, "run", "--watch", "-c", cfg, "--", "/bin/sh", "-c", `echo "generation=$GENERATION"; exec sleep 3600`)
	cmd.Env = append(baseEnv(), "VAULT_TOKEN=root")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
	}()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	wait := func(want string, limit time.Duration) error {
		timeout := time.After(limit)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return fmt.Errorf("secretrun exited before printing %q: %s", want, stderr.String())
				}
				if l == want {
					return nil
				}
			case <-timeout:
				return fmt.Errorf("no %q within %s (requests to Vault so far: %v): %s", want, limit, v.proxy.counts(), stderr.String())
			}
		}
	}
	if err := wait("generation=0", 30*time.Second); err != nil {
		return nil, err
	}
	// The watch loop takes its first labels with a metadata read after the
	// child has started; a version written before that read would become
	// the baseline and never be noticed. Rotations start once it is done,
	// so that they measure a loop in its steady state.
	for deadline := time.Now().Add(30 * time.Second); metadataReads(v.proxy.counts()) == metadataBefore; {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the watch loop read no metadata within 30s: %s", stderr.String())
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
		t0 := time.Now()
		if err := put(gen); err != nil {
			return nil, err
		}
		if err := wait(fmt.Sprintf("generation=%d", gen), 10*interval+30*time.Second); err != nil {
			return nil, err
		}
		res.s = append(res.s, time.Since(t0))
	}
	// Idle polls, to count what a poll costs when nothing changes.
	idleFrom := v.proxy.counts()
	idleStart := time.Now()
	idle := 5 * interval
	time.Sleep(idle)
	res.polls = int(time.Since(idleStart) / interval)
	if res.polls > 0 {
		per := map[string]int{}
		for k, n := range diff(idleFrom, v.proxy.counts()) {
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
