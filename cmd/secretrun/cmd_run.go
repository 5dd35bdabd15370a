package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"

	"github.com/urfave/cli/v3"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/inject"
)

// runOptions is what the command line asks `secretrun run` to do, parsed
// and checked; runJob turns it into a run.
type runOptions struct {
	// Args is the command, with --command already made into sh -c.
	Args []string
	// Watch, Mask: nil when the flag was not given, so the config decides.
	Watch       *bool
	Mask        *bool
	LogFormat   string
	PreserveEnv bool
}

// runCommand is `secretrun run`. runF does the work once the flags are
// parsed; tests pass their own to check parsing without side effects.
func runCommand(d deps, runF func(context.Context, *cli.Command, *runOptions) error) *cli.Command {
	return &cli.Command{
		Name:        "run",
		Usage:       "run COMMAND with its secrets in its environment (the default command)",
		ArgsUsage:   "-- COMMAND [ARGS...]",
		Description: runDescription,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "watch", Usage: "keep polling the secrets and apply watch.on_change when they rotate (default: watch.enabled)"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "`FORMAT` of secretrun's rotation and outage events on stderr: text, or json (one object per line, for log collectors)"},
			&cli.BoolFlag{Name: "mask", Usage: "redact secret values in the command's stdout and stderr (default: on when CI=true or mask: true; --mask=false turns it off)"},
			&cli.BoolFlag{Name: "preserve-env", Usage: "variables already set in the environment win over secrets"},
			&cli.StringFlag{Name: "command", Usage: "run `STRING` with /bin/sh -c instead of COMMAND"},
		},
		Action: func(ctx context.Context, c *cli.Command) error {
			opts, err := parseRun(c)
			if err != nil {
				return err
			}
			return runF(ctx, c, opts)
		},
	}
}

// parseRun reads and checks the flags of `secretrun run`.
func parseRun(c *cli.Command) (*runOptions, error) {
	opts := &runOptions{Args: c.Args().Slice(), LogFormat: c.String("log-format"), PreserveEnv: c.Bool("preserve-env")}
	if script := c.String("command"); script != "" {
		if len(opts.Args) > 0 {
			return nil, errors.New("give either --command STRING or a COMMAND after --, not both")
		}
		opts.Args = []string{"/bin/sh", "-c", script}
	}
	if len(opts.Args) == 0 {
		return nil, inject.ErrNoCommand
	}
	switch opts.LogFormat {
	case "text", "json":
	default:
		return nil, fmt.Errorf("--log-format: unknown format %q (text or json)", opts.LogFormat)
	}
	if c.IsSet("watch") {
		w := c.Bool("watch")
		opts.Watch = &w
	}
	if c.IsSet("mask") {
		m := c.Bool("mask")
		opts.Mask = &m
	}
	return opts, nil
}

const runDescription = `Exit status: the command's own; 128+N when signal N killed it; 124 when
watch.on_change is exit and a rotation stopped the command; 125 when
secretrun itself failed; 126 when the command cannot be executed; 127 when
it is not found.

With --watch (or watch.enabled) secretrun stays the command's parent and
polls each backend every watch.interval, each on its own. When secrets
rotate it applies watch.on_change: restart (stop_signal, stop_timeout, then
SIGKILL, and start the command again with the new values), signal (send
watch.signal; the command's environment cannot change, so this suits
programs that re-read their secrets another way), exit (stop the command and
exit with 124) or none (log only). A backend outage never stops or restarts
the command. Leased credentials are renewed for as long as the command runs,
with or without --watch, and revoked when it exits.`

// runJob plans the config and runs the command: the real work of `run`.
func runJob(d deps) func(context.Context, *cli.Command, *runOptions) error {
	return func(ctx context.Context, c *cli.Command, opts *runOptions) error {
		log, err := newLogger(opts.LogFormat, inject.MessageWriter(d.stderr))
		if err != nil {
			return err
		}
		f, err := loadConfig(c, d)
		if err != nil {
			return err
		}
		p, err := planFile(c, d, f)
		if err != nil {
			return err
		}
		job, err := jobFor(p, d, opts)
		if err != nil {
			return err
		}
		job.Log = log
		stopObserving, err := observeRun(d, f, p, &job)
		if err != nil {
			return err
		}
		defer stopObserving()
		status, err := inject.Run(ctx, job)
		switch {
		case err != nil:
			return err
		case status != 0:
			return childExit(status)
		}
		return nil
	}
}

// jobFor turns a plan and the command line into the engine's job.
func jobFor(p *config.Plan, d deps, opts *runOptions) (inject.Job, error) {
	job := inject.Job{
		Args:          opts.Args,
		Sources:       p.Sources,
		Providers:     p.Providers,
		Names:         providerNames(p),
		Environ:       d.environ,
		PreserveEnv:   opts.PreserveEnv,
		Stdin:         d.stdin,
		Stdout:        d.stdout,
		Stderr:        d.stderr,
		Mask:          p.Mask || d.getenv("CI") == "true",
		GitHubActions: d.getenv("GITHUB_ACTIONS") == "true",
		PID1:          d.pid == 1,
		StopSignal:    syscall.SIGTERM,
		StopTimeout:   p.Watch.StopTimeout,
	}
	job.Templates = templates(p)
	job.Serve = serveFor(p)
	if opts.Mask != nil {
		job.Mask = *opts.Mask
	}
	watching := p.Watch.Enabled
	if opts.Watch != nil {
		watching = *opts.Watch
	}
	if !watching {
		return job, nil
	}
	// Checked before anything is fetched: a signal this system cannot
	// send is a config error.
	var err error
	if job.StopSignal, err = parseSignal("watch.stop_signal", p.Watch.StopSignal); err != nil {
		return job, err
	}
	changeSignal, err := parseSignal("watch.signal", p.Watch.Signal)
	if err != nil {
		return job, err
	}
	job.Watch = &inject.Watch{
		Interval: p.Watch.Interval,
		OnChange: inject.Action(p.Watch.OnChange),
		Signal:   changeSignal,
		Splay:    p.Watch.Splay,
	}
	return job, nil
}

// parseSignal reads a signal name from the config; config has checked it
// names a signal, this checks the system can send it.
func parseSignal(key, name string) (os.Signal, error) {
	sig, err := inject.ParseSignal(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return sig, nil
}

// providerNames names each provider instance by type and name, `vault
// "prod"`, as the providers name themselves in errors.
func providerNames(p *config.Plan) map[string]string {
	names := make(map[string]string, len(p.Types))
	for name, typ := range p.Types {
		names[name] = fmt.Sprintf("%s %q", typ, name)
	}
	return names
}

// newLogger returns the logger of secretrun's events: `secretrun: MESSAGE`
// lines, or JSON objects with time, level, msg and the event's fields.
func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text", "":
		return slog.New(&textHandler{w: w}), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("--log-format: unknown format %q (text or json)", format)
}

// textHandler writes each record as one `secretrun: MESSAGE` line. The
// messages carry their details already; the fields are for JSON.
type textHandler struct {
	mu sync.Mutex
	w  io.Writer
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *textHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *textHandler) WithGroup(string) slog.Handler                { return h }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := fmt.Fprintf(h.w, "secretrun: %s\n", r.Message)
	return err
}

// closeProviders gives back what the plan's providers hold.
func closeProviders(p *config.Plan, d deps) {
	log, _ := newLogger("text", d.stderr)
	inject.CloseProviders(p.Providers, providerNames(p), log)
}
