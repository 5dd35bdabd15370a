package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/inject/mask"
	"github.com/secretrun/secretrun/providers"
)

func runCommand(d deps) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run COMMAND with its secrets in its environment (the default command)",
		ArgsUsage: "-- COMMAND [ARGS...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "mask", Usage: "redact secret values in the command's stdout and stderr (default: on when CI=true or mask: true; --mask=false turns it off)"},
			&cli.BoolFlag{Name: "preserve-env", Usage: "variables already set in the environment win over secrets"},
			&cli.StringFlag{Name: "command", Usage: "run `STRING` with /bin/sh -c instead of COMMAND"},
		},
		Action: func(c *cli.Context) error { return runAction(c, d) },
	}
}

func runAction(c *cli.Context, d deps) error {
	args := c.Args().Slice()
	if script := c.String("command"); script != "" {
		if len(args) > 0 {
			return errors.New("give either --command STRING or a COMMAND after --, not both")
		}
		args = []string{"/bin/sh", "-c", script}
	}
	if len(args) == 0 {
		return inject.ErrNoCommand
	}
	p, err := plan(c, d)
	if err != nil {
		return err
	}
	if err := inject.ProtectMemory(); err != nil {
		d.providerEnv().Warn("cannot mark secretrun non-dumpable: %v", err)
	}
	defer closeProviders(p, d)

	// Ctrl-C while fetching aborts the start; the child does not exist yet.
	fetchCtx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	secrets, err := inject.Resolve(fetchCtx, p.Sources, p.Providers)
	stop()
	if err != nil {
		return err
	}
	cmd := inject.Command{Args: args, Env: inject.Environ(d.environ, secrets.Vars, c.Bool("preserve-env"))}

	values := revealAll(secrets)
	if d.getenv("GITHUB_ACTIONS") == "true" {
		if err := mask.WriteAddMask(d.stdout, values); err != nil {
			return fmt.Errorf("register masks with GitHub Actions: %w", err)
		}
	}
	masking := p.Mask || d.getenv("CI") == "true"
	if c.IsSet("mask") {
		masking = c.Bool("mask")
	}

	isInit := d.pid == 1
	if inject.CanExec && !isInit && !masking && !holdsLeases(p, secrets) {
		return inject.Exec(cmd)
	}
	sup := &inject.Supervisor{
		Command:     cmd,
		Stdin:       d.stdin,
		Stdout:      d.stdout,
		Stderr:      d.stderr,
		Reap:        isInit,
		StopSignal:  syscall.SIGTERM,
		StopTimeout: p.Watch.StopTimeout,
	}
	if masking {
		stdout, stderr := mask.New(d.stdout, values, mask.Options{}), mask.New(d.stderr, values, mask.Options{})
		sup.Stdout, sup.Stderr = stdout, stderr
		warnShortValues(d, secrets, stdout.Skipped())
		// Closing writes out what the writers hold back.
		defer stderr.Close()
		defer stdout.Close()
	}
	status, err := sup.Run(c.Context)
	if err != nil {
		return err
	}
	if status != 0 {
		return childExit(status)
	}
	return nil
}

func revealAll(s *inject.Secrets) []string {
	values := make([]string, len(s.Vars))
	for i, v := range s.Vars {
		values[i] = v.Value.Reveal()
	}
	return values
}

// warnShortValues names, once, the variables whose values are too short to
// mask without redacting ordinary output.
func warnShortValues(d deps, s *inject.Secrets, skipped []int) {
	if len(skipped) == 0 {
		return
	}
	names := make([]string, len(skipped))
	for i, idx := range skipped {
		names[i] = s.Vars[idx].Name
	}
	d.providerEnv().Warn("not masking %s: values shorter than %d bytes would redact ordinary output", strings.Join(names, ", "), mask.MinLen)
}

// holdsLeases reports whether a secret is leased by a provider that gives
// leases back on exit: then secretrun stays the child's parent, so that it
// is still there to revoke them.
func holdsLeases(p *config.Plan, s *inject.Secrets) bool {
	for i, r := range s.Results {
		if r.Expires.IsZero() {
			continue
		}
		if _, ok := p.Providers[p.Sources[i].Provider].(providers.Closer); ok {
			return true
		}
	}
	return false
}

func closeProviders(p *config.Plan, d deps) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, prov := range p.Providers {
		if c, ok := prov.(providers.Closer); ok {
			if err := c.Close(ctx); err != nil {
				d.providerEnv().Warn("%s: %v", name, err)
			}
		}
	}
}
