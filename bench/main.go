//go:build linux

// Command bench measures secretrun against real local servers — a Vault dev
// server, moto for AWS Secrets Manager, the Infisical test server and the OS
// keyring — and writes the figures to BENCHMARKS.md at the repository root.
//
//	scripts/bench            # everything, rewrites BENCHMARKS.md
//	scripts/bench --smoke    # one small iteration of each, rewrites nothing
//
// It builds secretrun, starts the servers, seeds secrets, and times
// `secretrun run -- /bin/true` against running /bin/true directly. Requests
// to the backends are counted by the servers or by a counting proxy in front
// of them, never estimated. It is Linux-only, as its servers and /proc are.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
)

func main() {
	var o options
	flag.BoolVar(&o.smoke, "smoke", false, "one iteration of each measurement at small sizes; BENCHMARKS.md is not rewritten")
	flag.IntVar(&o.runs, "runs", 20, "timed runs per start-up figure, after a warm-up")
	flag.StringVar(&o.out, "out", "", "where to write the report (default: BENCHMARKS.md at the repository root; - for stdout)")
	flag.StringVar(&o.only, "only", "", "comma-separated groups to run: "+groupNames())
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this program to `FILE`; its in-process plan and fetch timings show where secretrun's own start-up work goes")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := mainErr(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, o options) error {
	h, err := newHarness(ctx, o, os.Stderr)
	if err != nil {
		return err
	}
	defer h.close()
	rep, err := h.runAll(ctx)
	if err != nil {
		return err
	}
	for _, s := range rep.skipped {
		fmt.Fprintf(os.Stderr, "bench: skipped %s: %v\n", s.what, s.err)
	}
	if o.smoke && o.out == "" {
		return nil
	}
	md := rep.markdown()
	if o.out == "-" {
		_, err := os.Stdout.WriteString(md)
		return err
	}
	out := o.out
	if out == "" {
		out = filepath.Join(h.root, "BENCHMARKS.md")
	}
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s\n", out)
	return nil
}
