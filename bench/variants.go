//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// variant is secretrun built differently, to measure what a change to its
// dependencies would save before any code is changed.
type variant struct {
	name string
	how  string
	// flags are the go build flags that make this build, such as -tags,
	// and env what it sets in the go command's environment.
	flags   []string
	env     []string
	bin     string
	version sample
	startup sample // the reference scenario
	init    time.Duration
	size    int64
}

// attribution is the initialisation time of the packages that only one
// import of secretrun's own packages brings in.
type attribution struct {
	entry    string
	packages int
	clock    time.Duration
	allocs   int
}

// attributeInit charges each package's init time to the dependency of
// secretrun's own packages without which it would not be linked: the
// packages reachable from cmd/secretrun minus those still reachable when
// that dependency is taken out of the import graph.
func (h *harness) attributeInit(ctx context.Context, inits []initCost) ([]attribution, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{with .Module}}{{.Path}}{{end}}", "./cmd/secretrun")
	cmd.Dir = h.root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps: %w", err)
	}
	const self = "github.com/secretrun/secretrun"
	imports := map[string][]string{}
	ours := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 {
			continue
		}
		imports[parts[0]] = strings.Fields(parts[1])
		ours[parts[0]] = parts[2] == self
	}
	reach := func(without string) map[string]bool {
		seen := map[string]bool{}
		stack := []string{self + "/cmd/secretrun"}
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[p] || p == without {
				continue
			}
			seen[p] = true
			stack = append(stack, imports[p]...)
		}
		return seen
	}
	everything := reach("")
	entries := map[string]bool{}
	for p := range ours {
		if !ours[p] {
			continue
		}
		for _, imp := range imports[p] {
			if !ours[imp] && strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
				entries[imp] = true
			}
		}
	}
	cost := map[string]initCost{}
	for _, c := range inits {
		cost[c.pkg] = c
	}
	var out2 []attribution
	for entry := range entries {
		rest := reach(entry)
		a := attribution{entry: entry}
		for p := range everything {
			if rest[p] {
				continue
			}
			a.packages++
			a.clock += cost[p].clock
			a.allocs += cost[p].allocs
		}
		out2 = append(out2, a)
	}
	sort.Slice(out2, func(i, j int) bool {
		if out2[i].clock != out2[j].clock {
			return out2[i].clock > out2[j].clock
		}
		return out2[i].entry < out2[j].entry
	})
	return out2, nil
}

// buildVariants builds secretrun in each of the other ways listed here and
// measures them beside the build as it is, as the release build is
// measured. The static build is listed because it is the builder's choice,
// not ours: `go install` links the C library wherever a C compiler is
// found, for net's resolver and os/user.
func (h *harness) buildVariants(ctx context.Context) ([]variant, error) {
	others := []variant{{name: "static", how: "`CGO_ENABLED=0 go build ./cmd/secretrun`", env: []string{"CGO_ENABLED=0"}}}
	vs := append([]variant{{name: "as built", how: "`go build ./cmd/secretrun`", bin: h.bin}}, others...)
	for i := range vs {
		v := &vs[i]
		if v.bin == "" {
			v.bin = filepath.Join(h.dir, fmt.Sprintf("secretrun-variant-%d", i))
			args := append([]string{"build", "-o", v.bin}, v.flags...)
			build := exec.CommandContext(ctx, "go", append(args, "./cmd/secretrun")...)
			build.Dir = h.root
			build.Env = append(os.Environ(), v.env...)
			if out, err := build.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("build %s: %w\n%s", v.name, err, out)
			}
			var err error
			if v.bin, err = h.installed(v.bin); err != nil {
				return nil, err
			}
		}
		st, err := os.Stat(v.bin)
		if err != nil {
			return nil, err
		}
		v.size = st.Size()
		inits, err := traceInit(ctx, v.bin, min(h.opts.runs, 11))
		if err != nil {
			return nil, err
		}
		for _, c := range inits {
			v.init += c.clock
		}
	}
	// The builds take turns, run by run, so that a change in the machine's
	// load while they are measured weighs on all of them alike, and in a
	// new random order each run, as the peers do, so that none always runs
	// straight after another.
	runs := h.opts.runs
	if !h.opts.smoke {
		runs *= 2 // these figures are compared with each other, closely
	}
	rng := rand.New(rand.NewPCG(23, uint64(time.Now().UnixNano())))
	for i := range 1 + runs {
		for _, j := range rng.Perm(len(vs)) {
			v := &vs[j]
			d, err := timeCommand(ctx, []string{v.bin, "version"}, baseEnv())
			if err != nil {
				return nil, err
			}
			var s time.Duration
			if h.reference != nil {
				argv := []string{v.bin, "run", "-c", h.reference.config, "--", "/bin/true"}
				if s, err = timeCommand(ctx, argv, h.reference.env); err != nil {
					return nil, errors.Join(fmt.Errorf("variant %s", v.name), err)
				}
			}
			if i == 0 && !h.opts.smoke {
				continue // warm-up
			}
			v.version = append(v.version, d)
			if h.reference != nil {
				v.startup = append(v.startup, s)
			}
		}
	}
	return vs, nil
}
