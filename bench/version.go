//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

const versionTarget = 10 * time.Millisecond

// versionResult is what `secretrun version` costs, and where its time goes
// before main.
type versionResult struct {
	version sample
	hello   sample // a Go program that prints one line: the runtime's floor
	// inits are package initialisers by median clock time, largest first.
	inits        []initCost
	initTotal    time.Duration
	initAllocs   int
	size         int64 // the binary as `go build` makes it
	strippedSize int64 // built with -ldflags='-s -w'
	// attributions charge init time to secretrun's direct dependencies.
	attributions []attribution
	variants     []variant
}

type initCost struct {
	pkg    string
	clock  time.Duration
	bytes  int
	allocs int
}

var inittraceLine = regexp.MustCompile(`^init (\S+) @[\d.]+ ms, ([\d.]+) ms clock, (\d+) bytes, (\d+) allocs`)

func (h *harness) measureVersion(ctx context.Context) (*versionResult, error) {
	res := &versionResult{}
	var err error
	runs := 50
	if h.opts.smoke {
		runs = 1
	}
	// `version` is fast and noisy: more runs than the start-up figures.
	saved := h.opts.runs
	h.opts.runs = runs
	res.version, err = h.timeRuns(ctx, []string{h.bin, "version"}, baseEnv())
	if err == nil {
		var hello string
		if hello, err = h.buildHello(ctx); err == nil {
			res.hello, err = h.timeRuns(ctx, []string{hello}, baseEnv())
		}
	}
	h.opts.runs = saved
	if err != nil {
		return nil, err
	}
	if res.inits, err = traceInit(ctx, h.bin, min(runs, 11)); err != nil {
		return nil, err
	}
	for _, c := range res.inits {
		res.initTotal += c.clock
		res.initAllocs += c.allocs
	}
	if res.attributions, err = h.attributeInit(ctx, res.inits); err != nil {
		return nil, err
	}
	st, err := os.Stat(h.bin)
	if err != nil {
		return nil, err
	}
	res.size = st.Size()
	stripped := filepath.Join(h.dir, "secretrun-stripped")
	build := exec.CommandContext(ctx, "go", "build", "-ldflags=-s -w", "-o", stripped, "./cmd/secretrun")
	build.Dir = h.root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build -ldflags='-s -w': %w\n%s", err, out)
	}
	if st, err = os.Stat(stripped); err != nil {
		return nil, err
	}
	res.strippedSize = st.Size()
	if res.variants, err = h.buildVariants(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// buildHello builds the smallest Go program that prints a line, for the
// start-up cost of any Go binary on this machine.
func (h *harness) buildHello(ctx context.Context) (string, error) {
	return h.buildProgram(ctx, "hello", "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"hello\\n\") }\n")
}

// buildProgram builds a one-file Go program outside this module, as `go
// build` builds it with env added to the environment, and returns it
// installed for timing.
func (h *harness) buildProgram(ctx context.Context, name, src string, env ...string) (string, error) {
	dir := filepath.Join(h.dir, "programs", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+name+"\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(append(os.Environ(), "GOFLAGS=", "GOWORK=off"), env...)
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", name, err, out)
	}
	return h.installed(bin)
}

// traceInit runs `bin version` with GODEBUG=inittrace=1 n times and returns
// each package's median initialisation time, largest first.
func traceInit(ctx context.Context, bin string, n int) ([]initCost, error) {
	clocks := map[string][]time.Duration{}
	last := map[string]initCost{}
	for range n {
		cmd := exec.CommandContext(ctx, bin, "version")
		cmd.Env = append(baseEnv(), "GODEBUG=inittrace=1")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("secretrun version: %w: %s", err, stderr.String())
		}
		for _, line := range strings.Split(stderr.String(), "\n") {
			m := inittraceLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			ms, _ := strconv.ParseFloat(m[2], 64)
			b, _ := strconv.Atoi(m[3])
			a, _ := strconv.Atoi(m[4])
			clocks[m[1]] = append(clocks[m[1]], time.Duration(ms*float64(time.Millisecond)))
			last[m[1]] = initCost{pkg: m[1], bytes: b, allocs: a}
		}
	}
	var inits []initCost
	for pkg, cs := range clocks {
		c := last[pkg]
		c.clock = sample(cs).median()
		inits = append(inits, c)
	}
	sort.Slice(inits, func(i, j int) bool {
		if inits[i].clock != inits[j].clock {
			return inits[i].clock > inits[j].clock
		}
		return inits[i].pkg < inits[j].pkg
	})
	return inits, nil
}
