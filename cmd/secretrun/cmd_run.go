package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
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
		Action: func(c *cli.Context) error { return runAction(c, d) },
	}
}

// exitRotated is secretrun's exit status after on_change: exit stopped the
// child because its secrets rotated. Like timeout(1)'s 124, it is none of
// the child's statuses that secretrun passes through (125-127 are its own
// failures, 128+N a signal), so an orchestrator can tell it apart and
// restart the container, which then starts with the new secrets.
const exitRotated = 124

const runDescription = `Exit status: the command's own; 128+N when signal N killed it; 124 when
watch.on_change is exit and a rotation stopped the command; 125 when
secretrun itself failed; 126 when the command cannot be executed; 127 when
it is not found.

With --watch (or watch.enabled) secretrun stays the command's parent and
polls the secrets every watch.interval. When they rotate it applies
watch.on_change: restart (stop_signal, stop_timeout, then SIGKILL, and start
the command again with the new values), signal (send watch.signal; the
command's environment cannot change, so this suits programs that re-read
their secrets another way), exit (stop the command and exit with 124) or
none (log only). A backend outage never stops or restarts the command.`

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
	log, err := newLogger(c.String("log-format"), d.stderr)
	if err != nil {
		return err
	}
	p, err := plan(c, d)
	if err != nil {
		return err
	}
	watching := p.Watch.Enabled
	if c.IsSet("watch") {
		watching = c.Bool("watch")
	}
	// Checked before anything is fetched: a signal this system cannot
	// send is a config error.
	var stopSignal, changeSignal os.Signal = syscall.SIGTERM, nil
	if watching {
		if stopSignal, err = parseSignal("watch.stop_signal", p.Watch.StopSignal); err != nil {
			return err
		}
		if changeSignal, err = parseSignal("watch.signal", p.Watch.Signal); err != nil {
			return err
		}
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
	preserve := c.Bool("preserve-env")
	environ := func(s *inject.Secrets) []string { return inject.Environ(d.environ, s.Vars, preserve) }
	cmd := inject.Command{Args: args, Env: environ(secrets)}

	values := revealAll(secrets)
	github := d.getenv("GITHUB_ACTIONS") == "true"
	if github {
		if err := mask.WriteAddMask(d.stdout, values); err != nil {
			return fmt.Errorf("register masks with GitHub Actions: %w", err)
		}
	}
	masking := p.Mask || d.getenv("CI") == "true"
	if c.IsSet("mask") {
		masking = c.Bool("mask")
	}

	isInit := d.pid == 1
	if inject.CanExec && !isInit && !masking && !watching && !holdsLeases(p, secrets) {
		return inject.Exec(cmd)
	}
	sup := &inject.Supervisor{
		Command:     cmd,
		Stdin:       d.stdin,
		Stdout:      d.stdout,
		Stderr:      d.stderr,
		Reap:        isInit,
		StopSignal:  stopSignal,
		StopTimeout: p.Watch.StopTimeout,
		Log:         log,
	}
	var masks []*rotatingMask
	if masking {
		stdout, stderr := newRotatingMask(d.stdout, values), newRotatingMask(d.stderr, values)
		sup.Stdout, sup.Stderr = stdout, stderr
		masks = []*rotatingMask{stdout, stderr}
		warnShortValues(d, secrets, stdout.skipped())
		// Closing writes out what the writers hold back.
		defer stderr.Close()
		defer stdout.Close()
	}
	if watching {
		sup.Watch = watchConfig(p, secrets, changeSignal)
		sup.Watch.Environ = environ
		sup.Watch.OnRotate = func(s *inject.Secrets) {
			fresh := revealAll(s)
			if github {
				// New values are registered before the child can print them.
				if err := mask.WriteAddMask(d.stdout, fresh); err != nil {
					log.Warn(fmt.Sprintf("register masks with GitHub Actions: %v", err))
				}
			}
			for _, m := range masks {
				m.add(fresh)
			}
		}
	}
	status, err := sup.Run(c.Context)
	switch {
	case errors.Is(err, inject.ErrExitOnChange):
		return childExit(exitRotated)
	case err != nil:
		return err
	case status != 0:
		return childExit(status)
	}
	return nil
}

// watchConfig turns the plan's watch: settings into the supervisor's.
func watchConfig(p *config.Plan, initial *inject.Secrets, sig os.Signal) *inject.Watch {
	return &inject.Watch{
		Sources:   p.Sources,
		Providers: p.Providers,
		Names:     providerNames(p),
		Initial:   initial,
		Interval:  p.Watch.Interval,
		OnChange:  inject.Action(p.Watch.OnChange),
		Signal:    sig,
		Splay:     p.Watch.Splay,
	}
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

// rotatingMask masks the child's output with every value it was given so
// far: when secrets rotate, the new values are masked too, and the old ones
// stay masked, since a stopping child may still print them. It outlives the
// children; Close ends it.
type rotatingMask struct {
	mu     sync.Mutex
	dst    io.Writer
	values []string
	w      *mask.Writer
}

func newRotatingMask(dst io.Writer, values []string) *rotatingMask {
	return &rotatingMask{dst: dst, values: values, w: mask.New(dst, values, mask.Options{})}
}

func (m *rotatingMask) skipped() []int { return m.w.Skipped() }

// Write holds the lock across the inner write, so that add never closes a
// writer in use.
func (m *rotatingMask) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.w.Write(p)
}

// add starts masking values as well.
func (m *rotatingMask) add(values []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// The old writer's Close writes out what it held back, masked.
	_ = m.w.Close()
	for _, v := range values {
		if !slices.Contains(m.values, v) {
			m.values = append(m.values, v)
		}
	}
	m.w = mask.New(m.dst, m.values, mask.Options{})
}

func (m *rotatingMask) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.w.Close()
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
