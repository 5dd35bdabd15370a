//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/all"
	"github.com/secretrun/secretrun/providers/keyring"
)

// startupRow is one scenario's start-up figures.
type startupRow struct {
	group, name string
	vars        int
	target      time.Duration
	s           sample
	// planning and running are secretrun's own work, timed in a running
	// process through the entry points of `secretrun run`: config.Load and
	// Plan, then inject.Run with /bin/true.
	planning, running sample
	// requests are those of one `secretrun run`, by endpoint; nil when
	// the backend's requests cannot be counted.
	requests map[string]int
}

// pollRow is what one watch poll costs a backend, measured through the
// provider's Versions method.
type pollRow struct {
	group, name string
	requests    map[string]int
	note        string
}

// rssRow is the peak resident memory of a supervising secretrun.
type rssRow struct {
	group, name string
	vars        int
	hwm, rss    int // KiB
}

type skip struct {
	what string
	err  error
}

// report is everything one benchmark run measured.
type report struct {
	opts    options
	machine machine
	direct  sample
	// childInProcess is /bin/true started and waited for by this process,
	// the part of each in-process run that is not secretrun's work.
	childInProcess sample
	startup        []startupRow
	polls          []pollRow
	rss            []rssRow
	mask           *maskResult
	version        *versionResult
	rotation       *rotationResult
	faults         *faultResult
	peers          *peersResult
	latency        *latencyResult
	skipped        []skip
	// referenceName names the scenario the build variants ran.
	referenceName string
}

func (h *harness) wants(name string) bool {
	if h.opts.only == "" {
		return true
	}
	for _, g := range strings.Split(h.opts.only, ",") {
		if strings.TrimSpace(g) == name {
			return true
		}
	}
	return false
}

func (h *harness) runAll(ctx context.Context) (*report, error) {
	rep := &report{opts: h.opts, machine: describeMachine(ctx)}
	var err error
	h.logf("timing /bin/true")
	if rep.direct, err = h.timeRuns(ctx, []string{"/bin/true"}, baseEnv()); err != nil {
		return nil, err
	}
	h.direct = rep.direct
	if rep.childInProcess, err = h.timeChildInProcess(ctx); err != nil {
		return nil, err
	}
	for _, g := range startupGroups {
		if !h.wants(g.name) {
			continue
		}
		if err := h.runGroup(ctx, g, rep); err != nil {
			return nil, err
		}
	}
	if h.wants(groupMask) {
		h.logf("masking throughput")
		if rep.mask, err = h.measureMask(ctx); err != nil {
			return nil, fmt.Errorf("masking: %w", err)
		}
	}
	if h.wants(groupVersion) {
		h.logf("secretrun version")
		if rep.version, err = h.measureVersion(ctx); err != nil {
			return nil, fmt.Errorf("version: %w", err)
		}
		if h.reference != nil {
			rep.referenceName = h.reference.name
		}
	}
	if h.wants(groupRotation) {
		h.logf("rotation")
		// A rotation that goes wrong is a finding, not a reason to lose
		// every other figure.
		if rep.rotation, err = h.measureRotation(ctx); err != nil {
			h.logf("rotation: %v", err)
			rep.rotation = &rotationResult{missing: fmt.Sprintf("The measurement failed: %v", err)}
		}
	}
	if h.wants(groupFaults) {
		h.logf("fault recovery")
		if rep.faults, err = h.measureFaults(ctx); err != nil {
			h.logf("faults: %v", err)
			rep.skipped = append(rep.skipped, skip{"fault recovery", err})
			rep.faults = nil
		}
	}
	if h.wants(groupPeers) {
		h.logf("side by side with peers")
		if rep.peers, err = h.measurePeers(ctx); err != nil {
			return nil, fmt.Errorf("peers: %w", err)
		}
	}
	if h.wants(groupLatency) {
		h.logf("behind latency")
		if rep.latency, err = h.measureLatency(ctx); err != nil {
			return nil, fmt.Errorf("latency: %w", err)
		}
	}
	rep.machine.loadAfter = loadAverage()
	return rep, nil
}

// runGroup measures one provider's scenarios. A backend that cannot start
// is recorded as skipped, not fatal: the other figures still stand.
func (h *harness) runGroup(ctx context.Context, g group, rep *report) error {
	h.logf("%s: seeding", g.name)
	be, scenarios, err := g.setup(ctx, h)
	if err != nil {
		rep.skipped = append(rep.skipped, skip{g.title, err})
		return nil
	}
	for _, sc := range scenarios {
		h.logf("%s: %s", g.name, sc.name)
		row := startupRow{group: g.title, name: sc.name, vars: sc.vars, target: sc.target}
		direct, err := h.writeConfig(g.name+"-"+sc.name, sc.config(be.direct))
		if err != nil {
			return err
		}
		env := append(baseEnv(), sc.env(be.direct)...)
		argv := []string{h.bin, "run", "-c", direct, "--", "/bin/true"}
		if row.s, err = h.timeRuns(ctx, argv, env); err != nil {
			return fmt.Errorf("%s %s: %w", g.name, sc.name, err)
		}
		if row.planning, row.running, err = h.timeInProcess(ctx, direct, env); err != nil {
			return fmt.Errorf("%s %s: in process: %w", g.name, sc.name, err)
		}
		if sc.target != 0 && h.reference == nil {
			h.reference = &reference{name: g.title + " " + sc.name, config: direct, env: env, target: sc.target}
		}
		if be.counter != nil {
			if row.requests, err = h.countRun(ctx, g, sc, be); err != nil {
				return fmt.Errorf("%s %s: %w", g.name, sc.name, err)
			}
		}
		rep.startup = append(rep.startup, row)
		if sc.poll {
			p, err := h.countPoll(ctx, g, sc, be)
			if err != nil {
				return fmt.Errorf("%s %s: poll: %w", g.name, sc.name, err)
			}
			rep.polls = append(rep.polls, p)
		}
		if sc.rss {
			hwm, rss, err := h.peakRSS(ctx, direct, env)
			if err != nil {
				return fmt.Errorf("%s %s: peak RSS: %w", g.name, sc.name, err)
			}
			rep.rss = append(rep.rss, rssRow{group: g.title, name: sc.name, vars: sc.vars, hwm: hwm, rss: rss})
		}
	}
	return nil
}

// countRun runs secretrun once against the counted endpoint and returns the
// requests it made.
func (h *harness) countRun(ctx context.Context, g group, sc scenario, be backend) (map[string]int, error) {
	counted, err := h.writeConfig(g.name+"-"+sc.name+"-counted", sc.config(be.counted))
	if err != nil {
		return nil, err
	}
	env := append(baseEnv(), sc.env(be.counted)...)
	before := be.counter.counts()
	if _, err := timeCommand(ctx, []string{h.bin, "run", "-c", counted, "--", "/bin/true"}, env); err != nil {
		return nil, err
	}
	return diff(before, be.counter.counts()), nil
}

// planAsCmd loads and plans a config in this process as `secretrun run`
// does (cmd/secretrun's plan), with env standing for secretrun's
// environment.
func planAsCmd(path string, env []string) (*config.Plan, error) {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	f, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	penv := providers.Env{
		Getenv:  func(k string) string { return vars[k] },
		HomeDir: vars["HOME"],
		Keyring: keyring.OS{},
		Stderr:  io.Discard,
	}
	return f.Plan(all.Registry(), config.Selection{Lookup: lookup}, penv)
}

// engineJob is the job `secretrun run` gives the engine for a plan, kept
// the child's parent (NoExec) so that this process survives the run.
func engineJob(plan *config.Plan, env, args []string, devNull *os.File) inject.Job {
	names := make(map[string]string, len(plan.Types))
	for name, typ := range plan.Types {
		names[name] = fmt.Sprintf("%s %q", typ, name)
	}
	return inject.Job{
		Args:        args,
		Sources:     plan.Sources,
		Providers:   plan.Providers,
		Names:       names,
		Environ:     env,
		Stdin:       devNull,
		Stdout:      devNull,
		Stderr:      devNull,
		NoExec:      true,
		StopSignal:  syscall.SIGTERM,
		StopTimeout: plan.Watch.StopTimeout,
	}
}

// timeInProcess times secretrun's own work in this already running
// process, with new providers (and so new connections) each time, through
// the same entry points as `secretrun run`: config.Load and Plan, then
// inject.Run, which fetches every source, builds the environment, starts
// /bin/true as a supervised child, waits for it and closes the providers.
func (h *harness) timeInProcess(ctx context.Context, path string, env []string) (planning, running sample, err error) {
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	defer devNull.Close()
	for i := range 1 + h.opts.runs {
		start := time.Now()
		plan, err := planAsCmd(path, env)
		if err != nil {
			return nil, nil, err
		}
		planned := time.Now()
		status, err := inject.Run(ctx, engineJob(plan, env, []string{"/bin/true"}, devNull))
		ran := time.Now()
		if err == nil && status != 0 {
			err = fmt.Errorf("/bin/true exited with %d", status)
		}
		if err != nil {
			return nil, nil, err
		}
		if i > 0 || h.opts.smoke {
			planning = append(planning, planned.Sub(start))
			running = append(running, ran.Sub(planned))
		}
	}
	return planning, running, nil
}

// timeChildInProcess times starting /bin/true from this process and
// waiting for it, the part of timeInProcess's run that is not secretrun's.
func (h *harness) timeChildInProcess(ctx context.Context) (sample, error) {
	var s sample
	for i := range 1 + h.opts.runs {
		start := time.Now()
		if err := exec.CommandContext(ctx, "/bin/true").Run(); err != nil {
			return nil, err
		}
		if i > 0 || h.opts.smoke {
			s = append(s, time.Since(start))
		}
	}
	return s, nil
}

// pollInterval is the watch interval the poll counts run with: long enough
// that one poll of 1000 paths ends well before the next begins.
const pollInterval = 2 * time.Second

// countPoll runs `secretrun run --watch` against the counted endpoint and
// counts the requests of one idle poll: the running watch loop's requests
// are grouped into polls by the quiet time between them, the first poll
// (which may still establish ETags or caches) is left out, and the last
// complete one is counted.
func (h *harness) countPoll(ctx context.Context, g group, sc scenario, be backend) (pollRow, error) {
	row := pollRow{group: g.title, name: sc.name}
	endpoint := be.counted
	if endpoint == "" {
		endpoint = be.direct
	}
	text := sc.config(endpoint) + fmt.Sprintf("watch:\n  interval: %s\n  on_change: none\n", pollInterval)
	path, err := h.writeConfig(g.name+"-"+sc.name+"-poll", text)
	if err != nil {
		return row, err
	}
	env := append(baseEnv(), sc.env(endpoint)...)
	plan, err := planAsCmd(path, env)
	if err != nil {
		return row, err
	}
	versioned := true
	for _, p := range plan.Providers {
		if _, ok := p.(providers.Versioner); !ok {
			versioned = false
		}
	}
	inject.CloseProviders(plan.Providers, nil, slog.New(slog.DiscardHandler))
	if !versioned {
		row.note = "no Versions method: each poll fetches every source again"
	}
	if be.counter == nil {
		if versioned {
			row.note = "requests not countable"
		}
		return row, nil
	}
	proxy, ok := be.counter.(*countingProxy)
	if !ok {
		return row, fmt.Errorf("%s: requests are counted without their times", g.name)
	}
	since := time.Now()
	w, err := h.startWatched(ctx, path, env, "/bin/sh", "-c", "echo started; exec sleep 3600")
	if err != nil {
		return row, err
	}
	defer w.stop()
	if _, err := w.waitFor(30*time.Second, "the child's start", func(l line) bool { return !l.stderr && l.text == "started" }, nil); err != nil {
		return row, err
	}
	// Requests within a poll follow each other closely; polls are an
	// interval apart, give or take a tenth.
	gap := pollInterval / 4
	deadline := time.Now().Add(10*pollInterval + 30*time.Second)
	for {
		// The start-up fetch, then three polls: the first compares values
		// and may establish ETags, the third is counted once a quiet gap
		// shows it complete.
		if b, quiet := proxy.bursts(since, gap); len(b) >= 4 && quiet {
			row.requests = b[len(b)-1]
			return row, nil
		}
		if time.Now().After(deadline) {
			return row, fmt.Errorf("fewer than three polls in %s: %s", time.Since(since).Round(time.Second), w.stderr.String())
		}
		time.Sleep(gap / 4)
	}
}

// peakRSS starts `secretrun run --mask` with a child that waits on its
// stdin, reads secretrun's VmHWM and VmRSS once the child is running (with
// every secret fetched and masking set up), then lets the child exit.
func (h *harness) peakRSS(ctx context.Context, configPath string, env []string) (hwm, rss int, err error) {
	cmd := exec.CommandContext(ctx, h.bin, "run", "--mask", "-c", configPath, "--", "/bin/sh", "-c", "echo ready; read _; exit 0")
	cmd.Env = env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		stdin.Close()
		_, _ = io.Copy(io.Discard, stdout)
		if werr := cmd.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("%w: %s", werr, stderr.String())
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return 0, 0, fmt.Errorf("child did not start: %w", err)
	}
	if line != "ready\n" {
		return 0, 0, fmt.Errorf("unexpected output %q", line)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	return statusKiB(string(status), "VmHWM"), statusKiB(string(status), "VmRSS"), nil
}

// statusKiB reads a "Name:   1234 kB" line of /proc/PID/status.
func statusKiB(status, name string) int {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, name+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return n
		}
	}
	return 0
}

func jsonObject(m map[string]any) string {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // strings only
	}
	return string(b)
}
