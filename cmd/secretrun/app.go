package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/inject/serve"
	"github.com/secretrun/secretrun/internal/environ"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/all"
	"github.com/secretrun/secretrun/providers/keyring"
)

// Exit statuses of secretrun's own, as env(1), timeout(1) and docker run
// use them; otherwise secretrun exits with the child's status.
const (
	exitFailure       = 125 // secretrun itself failed: config, auth, a backend
	exitCannotExecute = 126
	exitNotFound      = 127
)

// deps is everything a command takes from its surroundings; tests replace
// any of it.
type deps struct {
	stdin          *os.File
	stdout, stderr io.Writer
	// environ is secretrun's own environment.
	environ  []string
	registry *providers.Registry
	keyring  providers.Keyring
	getwd    func() (string, error)
	pid      int
	// run, when set, replaces the work of `secretrun run` once its flags
	// are parsed: tests check parsing with it.
	run func(context.Context, *cli.Command, *runOptions) error
}

func (d deps) runF() func(context.Context, *cli.Command, *runOptions) error {
	if d.run != nil {
		return d.run
	}
	return runJob(d)
}

func systemDeps() deps {
	return deps{
		stdin:    os.Stdin,
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		environ:  os.Environ(),
		registry: all.Registry(),
		keyring:  keyring.OS{},
		getwd:    os.Getwd,
		pid:      os.Getpid(),
	}
}

func (d deps) getenv(name string) string {
	v, _ := d.lookupEnv(name)
	return v
}

func (d deps) lookupEnv(name string) (string, bool) { return environ.Lookup(d.environ, name) }

func (d deps) providerEnv() providers.Env {
	home, _ := os.UserHomeDir()
	if h := d.getenv("HOME"); h != "" {
		home = h
	}
	return providers.Env{Getenv: d.getenv, Environ: func() []string { return d.environ }, HomeDir: home, Keyring: d.keyring, Stderr: d.stderr}
}

// childExit carries the child's exit status out of a command.
type childExit int

func (c childExit) Error() string { return fmt.Sprintf("the command exited with status %d", int(c)) }

// run is the whole program: it parses args, runs a command and decides the
// exit status, in this one place.
func run(ctx context.Context, args []string, d deps) int {
	if len(args) > 1 && args[1] == serve.ShimArg {
		// A child of secretrun's own, on its way to the command.
		return serve.RunShim(args[2:], d.stderr)
	}
	return runApp(ctx, newApp(d, directCommand(args)), args, d)
}

// runApp runs args on app.
func runApp(ctx context.Context, app *cli.Command, args []string, d deps) int {
	args, err := canonicalArgs(app, normalizeArgs(app, args))
	if err == nil {
		if c := namedCommand(app, args); c != nil {
			// urfave/cli sets up every command of the tree before it runs
			// one; only the named one can run, or show its help.
			app.Commands = []*cli.Command{c}
		}
		err = app.Run(ctx, args)
	}
	return exitStatus(err, d.stderr)
}

// namedCommand returns the command that args name after the root's flags,
// or nil when they name none or ask for the root's help.
func namedCommand(app *cli.Command, args []string) *cli.Command {
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return nil
		}
		if len(a) > 1 && a[0] == '-' {
			known, takesValue, err := checkFlag(app, a)
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if err != nil || !known || name == "help" || name == "h" {
				return nil
			}
			if takesValue {
				i++
			}
			continue
		}
		return app.Command(a)
	}
	return nil
}

func exitStatus(err error, stderr io.Writer) int {
	var child childExit
	var start *inject.StartError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &child):
		return int(child)
	case errors.As(err, &start):
		fmt.Fprintf(stderr, "secretrun: %v\n", start)
		if start.NotFound {
			return exitNotFound
		}
		return exitCannotExecute
	default:
		fmt.Fprintf(stderr, "secretrun: %v\n", err)
		return exitFailure
	}
}

// normalizeArgs makes `run` the command when none is named, so that
// `secretrun -- npm start` and `secretrun -e prod -- env` run a program,
// even one whose name is also a secretrun command.
func normalizeArgs(app *cli.Command, args []string) []string {
	if len(args) < 2 {
		return args
	}
	var withValue map[string]bool
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
		case strings.HasPrefix(a, "-"):
			if withValue == nil {
				withValue = valueFlags(app)
			}
			if withValue[a] {
				i++
			}
			continue
		case app.Command(a) != nil:
			return args
		}
		if a == "-h" || a == "--help" {
			return args
		}
		return slices.Insert(slices.Clone(args), 1, "run")
	}
	for _, a := range args[1:] {
		if a == "-h" || a == "--help" || a == "-v" || a == "--version" {
			return args
		}
	}
	return slices.Insert(slices.Clone(args), 1, "run")
}

// valueFlags are the flags of app's commands that take a value, as
// they may be written: -name and --name.
func valueFlags(app *cli.Command) map[string]bool {
	withValue := map[string]bool{}
	for _, cmd := range app.Commands {
		for _, f := range cmd.Flags {
			if _, isBool := f.(*cli.BoolFlag); isBool {
				continue
			}
			for _, n := range f.Names() {
				withValue["-"+n] = true
				withValue["--"+n] = true
			}
		}
	}
	return withValue
}

// selectionFlags choose the config, environment and scope. Every command
// has its own copies, as each level of the command line may give them: a
// urfave/cli flag holds its value, so one flag in two commands would be
// reset by the inner command's parse.
func selectionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "config `FILE` (default: secretrun.yaml here or in a parent directory)", Sources: cli.EnvVars("SECRETRUN_CONFIG"), Local: true},
		&cli.StringFlag{Name: "env", Aliases: []string{"e"}, Usage: "environment `NAME` (default: default_environment)", Sources: cli.EnvVars("SECRETRUN_ENV"), Local: true},
		&cli.StringFlag{Name: "scope", Aliases: []string{"s"}, Usage: "scope `NAME`, for {scope} in paths", Sources: cli.EnvVars("SECRETRUN_SCOPE"), Local: true},
	}
}

// commands are secretrun's commands, each with its name.
var commands = []struct {
	name  string
	build func(deps) *cli.Command
}{
	{"run", func(d deps) *cli.Command { return runCommand(d, d.runF()) }},
	{"env", envCommand},
	{"check", checkCommand},
	{"login", loginCommand},
	{"logout", logoutCommand},
	{"keyring", keyringCommand},
	{"scan", scanCommand},
	{"status", statusCommand},
	{"audit", auditCommand},
	{"import", importCommand},
	{"version", versionCommand},
}

// directCommand is the command that args name at once, with no flag of
// the root's before it: "run" for `secretrun -- CMD`, "" when args name
// none that way.
func directCommand(args []string) string {
	if len(args) < 2 {
		return ""
	}
	if args[1] == "--" {
		return "run"
	}
	for _, c := range commands {
		if c.name == args[1] {
			return c.name
		}
	}
	return ""
}

// newApp builds the command line: every command, or only the one named
// when only is set. That one is all that can run; setting up the other
// ten, their flags and help, would cost every start for nothing.
func newApp(d deps, only string) *cli.Command {
	app := &cli.Command{
		Name:      "secretrun",
		Usage:     "run a program with its secrets in its environment, fetched from a secret manager, never written to disk",
		UsageText: "secretrun [run] [flags] -- COMMAND [ARGS...]\nsecretrun env|check|login|logout|keyring|version [flags]",
		Reader:    d.stdin,
		Writer:    d.stdout,
		ErrWriter: d.stderr,
		Flags:     selectionFlags(),
		// Exit statuses are decided by run alone; urfave must never call
		// os.Exit, or deferred cleanup such as lease revocation is lost.
		ExitErrHandler:  func(context.Context, *cli.Command, error) {},
		HideHelpCommand: true,
		HideVersion:     true,
	}
	for _, c := range commands {
		if only == "" || c.name == only {
			cmd := c.build(d)
			cmd.Flags = append(selectionFlags(), cmd.Flags...)
			app.Commands = append(app.Commands, cmd)
		}
	}
	shapeCommands(app)
	return app
}

// flag returns the value of a string flag given at any level of the command
// line (`secretrun -e prod env` and `secretrun env -e prod` alike).
func flag(c *cli.Command, name string) string {
	for _, cmd := range c.Lineage() {
		if cmd.IsSet(name) {
			return cmd.String(name)
		}
	}
	return ""
}

// loadConfig finds and loads the config file.
func loadConfig(c *cli.Command, d deps) (*config.File, error) {
	name := flag(c, "config")
	if name == "" {
		wd, err := d.getwd()
		if err != nil {
			return nil, err
		}
		found, err := config.Find(wd)
		if err != nil {
			return nil, err
		}
		name = relative(wd, found)
	}
	return config.Load(name)
}

// relative shortens a path for messages, relative to wd as a shell user
// would write it.
func relative(wd, path string) string {
	if rel, err := filepath.Rel(wd, path); err == nil {
		return rel
	}
	return path
}

// plan loads the config and plans the chosen environment.
func plan(c *cli.Command, d deps) (*config.Plan, error) {
	f, err := loadConfig(c, d)
	if err != nil {
		return nil, err
	}
	return planFile(c, d, f)
}

// planFile plans the chosen environment of a loaded config.
func planFile(c *cli.Command, d deps, f *config.File) (*config.Plan, error) {
	return f.Plan(d.registry, config.Selection{
		Environment: flag(c, "env"),
		Scope:       flag(c, "scope"),
		Lookup:      d.lookupEnv,
	}, d.providerEnv())
}
