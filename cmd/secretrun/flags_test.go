package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/providertest"
)

// parsed runs secretrun with args and returns the options `run` would have
// run with, the exit status and stderr; nothing is fetched or started.
func parsed(t *testing.T, args ...string) (*runOptions, int, string) {
	t.Helper()
	var got *runOptions
	var stdout, stderr bytes.Buffer
	d := deps{stdout: &stdout, stderr: &stderr, getwd: os.Getwd, run: func(_ context.Context, _ *cli.Command, o *runOptions) error {
		got = o
		return nil
	}}
	status := run(context.Background(), append([]string{"secretrun"}, args...), d)
	return got, status, stderr.String()
}

func TestRunFlags(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		args []string
		want runOptions
	}{
		{[]string{"--", "npm", "start"}, runOptions{Args: []string{"npm", "start"}, LogFormat: "text"}},
		{[]string{"run", "--", "npm", "start"}, runOptions{Args: []string{"npm", "start"}, LogFormat: "text"}},
		{[]string{"npm", "start"}, runOptions{Args: []string{"npm", "start"}, LogFormat: "text"}},
		{[]string{"--watch", "--", "app"}, runOptions{Args: []string{"app"}, Watch: &yes, LogFormat: "text"}},
		{[]string{"--watch=false", "--", "app"}, runOptions{Args: []string{"app"}, Watch: &no, LogFormat: "text"}},
		{[]string{"--mask", "--", "app"}, runOptions{Args: []string{"app"}, Mask: &yes, LogFormat: "text"}},
		{[]string{"--mask=false", "--", "app"}, runOptions{Args: []string{"app"}, Mask: &no, LogFormat: "text"}},
		{[]string{"--preserve-env", "--log-format", "json", "--", "app"}, runOptions{Args: []string{"app"}, PreserveEnv: true, LogFormat: "json"}},
		{[]string{"-e", "prod", "--", "app"}, runOptions{Args: []string{"app"}, LogFormat: "text"}},
		{[]string{"--command", "echo $A && env"}, runOptions{Args: []string{"/bin/sh", "-c", "echo $A && env"}, LogFormat: "text"}},
		// After --, everything is the command's, flags of secretrun's too.
		{[]string{"--", "app", "--watch", "--mask"}, runOptions{Args: []string{"app", "--watch", "--mask"}, LogFormat: "text"}},
		// A program named like a secretrun command runs as a program.
		{[]string{"--", "env"}, runOptions{Args: []string{"env"}, LogFormat: "text"}},
		// Flags end at the command's first argument, -- or not.
		{[]string{"run", "app", "--watch", "-e", "prod"}, runOptions{Args: []string{"app", "--watch", "-e", "prod"}, LogFormat: "text"}},
		{[]string{"--mask", "app", "--", "--watch"}, runOptions{Args: []string{"app", "--", "--watch"}, Mask: &yes, LogFormat: "text"}},
		{[]string{" --watch", "app"}, runOptions{Args: []string{" --watch", "app"}, LogFormat: "text"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got, status, stderr := parsed(t, tc.args...)
			if status != 0 || got == nil {
				t.Fatalf("exit %d, stderr %q; want the command run", status, stderr)
			}
			if !slices.Equal(got.Args, tc.want.Args) {
				t.Errorf("command %q, want %q", got.Args, tc.want.Args)
			}
			if !sameBool(got.Watch, tc.want.Watch) || !sameBool(got.Mask, tc.want.Mask) {
				t.Errorf("watch %v mask %v, want %v %v", show(got.Watch), show(got.Mask), show(tc.want.Watch), show(tc.want.Mask))
			}
			if got.LogFormat != tc.want.LogFormat || got.PreserveEnv != tc.want.PreserveEnv {
				t.Errorf("log format %q preserve-env %v, want %q %v", got.LogFormat, got.PreserveEnv, tc.want.LogFormat, tc.want.PreserveEnv)
			}
		})
	}
}

func TestRunFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--watch"}, "secretrun: no command given; put it after --, as in: secretrun -- npm start\n"},
		{[]string{"--command", "true", "--", "app"}, "secretrun: give either --command STRING or a COMMAND after --, not both\n"},
		{[]string{"--log-format", "xml", "--", "app"}, `secretrun: --log-format: unknown format "xml" (text or json)` + "\n"},
		{[]string{"--wach", "--", "app"}, "secretrun: flag provided but not defined: -wach; see `secretrun run --help`\n"},
		{[]string{"--mask=maybe", "--", "app"}, "secretrun: invalid boolean value \"maybe\" for -mask: parse error; see `secretrun run --help`\n"},
		{[]string{"--watch=", "--", "app"}, "secretrun: invalid boolean value \"\" for -watch: parse error; see `secretrun run --help`\n"},
		{[]string{"--log-format"}, "secretrun: flag needs an argument: -log-format; see `secretrun run --help`\n"},
		{[]string{"-1", "--", "app"}, "secretrun: flag provided but not defined: -1; see `secretrun run --help`\n"},
		{[]string{"---watch", "--", "app"}, "secretrun: bad flag syntax: ---watch; see `secretrun run --help`\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got, status, stderr := parsed(t, tc.args...)
			if got != nil {
				t.Errorf("the command was run with %+v", got)
			}
			if status != exitFailure {
				t.Errorf("exit status %d, want %d", status, exitFailure)
			}
			if stderr != tc.want {
				t.Errorf("stderr:\n%q\nwant:\n%q", stderr, tc.want)
			}
		})
	}
}

func sameBool(a, b *bool) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func show(b *bool) string {
	if b == nil {
		return "unset"
	}
	if *b {
		return "true"
	}
	return "false"
}

// planOf plans a config for jobFor, with the fake provider type.
func planOf(t *testing.T, yaml string) *config.Plan {
	t.Helper()
	f, err := config.Parse("secretrun.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	fake := providertest.NewFake()
	reg := providers.NewRegistry()
	reg.Register(fake.Type())
	p, err := f.Plan(reg, config.Selection{Lookup: func(string) (string, bool) { return "", false }}, providers.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestJobFollowsConfigAndFlags(t *testing.T) {
	const watched = `
version: 1
providers:
  f: {type: fake}
watch:
  enabled: true
  interval: 7s
  on_change: signal
  signal: SIGUSR1
  stop_signal: SIGINT
  stop_timeout: 3s
mask: true
environments:
  dev: []
`
	yes, no := true, false
	d := deps{environ: []string{"CI=false"}}
	job, err := jobFor(planOf(t, watched), d, &runOptions{Args: []string{"app"}})
	if err != nil {
		t.Fatal(err)
	}
	if job.Watch == nil || job.Watch.Interval != 7*time.Second || job.Watch.OnChange != inject.ActionSignal || job.Watch.Signal != syscall.SIGUSR1 {
		t.Errorf("watch %+v, want the config's", job.Watch)
	}
	if job.StopSignal != syscall.SIGINT || job.StopTimeout != 3*time.Second || !job.Mask {
		t.Errorf("stop %v after %v, mask %v; want the config's", job.StopSignal, job.StopTimeout, job.Mask)
	}
	// The flags win over the config.
	job, err = jobFor(planOf(t, watched), d, &runOptions{Args: []string{"app"}, Watch: &no, Mask: &no})
	if err != nil {
		t.Fatal(err)
	}
	if job.Watch != nil || job.Mask {
		t.Errorf("--watch=false --mask=false left watch %+v, mask %v", job.Watch, job.Mask)
	}

	const plain = "version: 1\nproviders:\n  f: {type: fake}\nenvironments:\n  dev: []\n"
	job, _ = jobFor(planOf(t, plain), d, &runOptions{Args: []string{"app"}})
	if job.Watch != nil || job.Mask || job.GitHubActions {
		t.Errorf("nothing asked for, got watch %+v mask %v", job.Watch, job.Mask)
	}
	job, _ = jobFor(planOf(t, plain), d, &runOptions{Args: []string{"app"}, Watch: &yes})
	if job.Watch == nil || job.Watch.OnChange != inject.ActionRestart || job.StopSignal != syscall.SIGTERM {
		t.Errorf("--watch gave %+v stop %v, want the defaults: restart, SIGTERM", job.Watch, job.StopSignal)
	}
	// CI masks by default; GitHub Actions also registers the values.
	ci := deps{environ: []string{"CI=true", "GITHUB_ACTIONS=true"}}
	job, _ = jobFor(planOf(t, plain), ci, &runOptions{Args: []string{"app"}})
	if !job.Mask || !job.GitHubActions {
		t.Errorf("under CI mask %v add-mask %v, want both", job.Mask, job.GitHubActions)
	}
	job, _ = jobFor(planOf(t, plain), ci, &runOptions{Args: []string{"app"}, Mask: &no})
	if job.Mask {
		t.Errorf("--mask=false did not turn CI's masking off")
	}
}

// A command line that names its command at once is parsed by an app of
// that one command; it must read as it does with all of them.
func TestOneCommandAppParsesAsTheWholeApp(t *testing.T) {
	d := deps{getwd: os.Getwd}
	for _, c := range commands {
		if got := c.build(d).Name; got != c.name {
			t.Errorf("commands lists %q for a command named %q", c.name, got)
		}
	}
	lines := [][]string{
		{"--"}, {"--", "app", "--watch"}, {"--", "env"},
		{"run"}, {"run", "--"}, {"run", "app", "--watch"}, {"run", "--watch", "--mask=false", "-c", "x.yaml", "-e", "prod", "-s", "eu", "--", "app"},
		{"run", "--watch=maybe", "--", "app"}, {"run", "-1", "--", "app"}, {"run", "--log-format"}, {"run", "--log-format", "xml", "--", "app"},
		{"run", "--command", "echo", "app"}, {"run", "--bogus", "--", "app"}, {"run", "help"}, {"run", "help", "--watch"}, {"run", "-h"}, {"run", "--help"},
		{"version"}, {"version", "--help"}, {"version", "extra"}, {"version", "-x"},
		{"env", "--help"}, {"env", "help"}, {"check", "-h"}, {"login", "--help"}, {"logout", "--bogus"},
		{"keyring", "--help"}, {"keyring", "help"}, {"keyring", "help", "set"}, {"keyring", "bogus"}, {"keyring", "set", "--help"},
		{"scan", "--help"}, {"status", "-h"}, {"audit", "--help"}, {"audit", "match", "--help"}, {"import", "--help"},
	}
	for _, line := range lines {
		args := append([]string{"secretrun"}, line...)
		only := directCommand(args)
		if only == "" {
			t.Errorf("%q: names no command at once", line)
			continue
		}
		parse := func(app func(deps) *cli.Command) (status int, stdout, stderr string, opts *runOptions) {
			var out, errs bytes.Buffer
			d := deps{stdout: &out, stderr: &errs, getwd: os.Getwd, run: func(_ context.Context, _ *cli.Command, o *runOptions) error {
				opts = o
				return nil
			}}
			status = runApp(context.Background(), app(d), args, d)
			return status, out.String(), errs.String(), opts
		}
		status, stdout, stderr, opts := parse(func(d deps) *cli.Command { return newApp(d, only) })
		wantStatus, wantStdout, wantStderr, wantOpts := parse(func(d deps) *cli.Command { return newApp(d, "") })
		if status != wantStatus || stdout != wantStdout || stderr != wantStderr {
			t.Errorf("%q with only %s: exit %d, stdout %q, stderr %q; with every command: exit %d, stdout %q, stderr %q", line, only, status, stdout, stderr, wantStatus, wantStdout, wantStderr)
		}
		if (opts == nil) != (wantOpts == nil) || opts != nil && (!slices.Equal(opts.Args, wantOpts.Args) || !sameBool(opts.Watch, wantOpts.Watch) || !sameBool(opts.Mask, wantOpts.Mask) || opts.LogFormat != wantOpts.LogFormat || opts.PreserveEnv != wantOpts.PreserveEnv) {
			t.Errorf("%q with only %s: options %+v; with every command %+v", line, only, opts, wantOpts)
		}
	}
	for _, line := range [][]string{{}, {"-e", "prod", "--", "app"}, {"app"}, {"--help"}, {"help"}, {"bogus"}} {
		if only := directCommand(append([]string{"secretrun"}, line...)); only != "" {
			t.Errorf("%q: names %q at once; want the whole app", line, only)
		}
	}
}
