package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v3"
)

// The command line is a public contract that was first parsed with Go's
// flag package under urfave/cli v2: flags end at a command's first
// argument, `-1` and `--watch=` are errors, `CMD help` shows CMD's help,
// and help reads as it did. urfave/cli v3 differs in each, so this file
// holds what keeps the contract on top of it.

// commandHelpTemplate is the help of every command below the root. It
// lists the help command that urfave/cli v3 leaves out of a command's list.
const commandHelpTemplate = `NAME:
   {{template "helpNameTemplate" .}}

USAGE:
   {{.FullName}}{{if .VisibleFlags}} [command options]{{end}}{{if .ArgsUsage}} {{.ArgsUsage}}{{end}}{{if .Description}}

DESCRIPTION:
   {{template "descriptionTemplate" .}}{{end}}{{if .Commands}}

COMMANDS:{{$width := offsetCommands .Commands 5}}{{range .Commands}}
   {{$names := join .Names ", "}}{{$names}}{{indent (subtract $width (offset $names 3)) ""}}{{wrap .Usage $width}}{{end}}{{end}}{{if .VisibleFlags}}

OPTIONS:{{template "visibleFlagTemplate" .}}{{end}}
`

// urfave/cli v3 takes these for a command with no help template of its
// own; the root's is its default, which reads as the v2 one did.
func init() {
	cli.CommandHelpTemplate = commandHelpTemplate
	cli.SubcommandHelpTemplate = commandHelpTemplate
}

// shapeCommands gives every command of app the behaviour the contract
// asks of all of them.
func shapeCommands(app *cli.Command) {
	// Flags end at a command's first argument, so that in `secretrun run
	// app --watch` the --watch is app's.
	firstArg := 1
	_ = app.Walk(func(c *cli.Command) error {
		c.StopOnNthArg = &firstArg
		c.OnUsageError = usageError
		// Help gives every boolean flag's default, (default: false).
		for _, f := range c.Flags {
			if b, ok := f.(*cli.BoolFlag); ok && b.DefaultText == "" {
				b.DefaultText = strconv.FormatBool(b.Value)
			}
		}
		if c != app && len(c.Commands) > 0 {
			c.Commands = append(c.Commands, helpCommand())
		}
		return nil
	})
}

// helpCommand is `secretrun keyring help [COMMAND]` and the like, for the
// commands that have commands of their own.
func helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Aliases:   []string{"h"},
		Usage:     "Shows a list of commands or help for one command",
		ArgsUsage: "[command]",
		Action: func(ctx context.Context, c *cli.Command) error {
			parent := c.Lineage()[1]
			if c.Args().Present() {
				return cli.ShowCommandHelp(ctx, parent, c.Args().First())
			}
			return cli.ShowSubcommandHelp(parent)
		},
	}
}

// usageError is every command's answer to a command line it cannot parse.
func usageError(_ context.Context, c *cli.Command, err error, _ bool) error {
	return withHelpHint(err, c.FullName())
}

// withHelpHint points err at the help of the command fullName.
func withHelpHint(err error, fullName string) error {
	if fullName == "secretrun" {
		return fmt.Errorf("%v; see `secretrun --help`", err)
	}
	return fmt.Errorf("%v; see `secretrun %s --help`", err, strings.TrimPrefix(fullName, "secretrun "))
}

// canonicalArgs checks args as Go's flag package would, command by
// command, and rewrites them so that urfave/cli v3 reads them the same:
// an explicit -- before a command's first argument, and --help for a
// `help` or `h` in its place.
func canonicalArgs(app *cli.Command, args []string) ([]string, error) {
	cmd, path := app, []string{app.Name}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return args, nil
		}
		if len(a) > 1 && a[0] == '-' {
			known, takesValue, err := checkFlag(cmd, a)
			if err != nil {
				return nil, withHelpHint(err, strings.Join(path, " "))
			}
			if !known {
				// urfave/cli reports it, as Go's flag package would.
				return args, nil
			}
			if takesValue {
				if i+1 == len(args) {
					name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
					return nil, withHelpHint(errors.New("flag needs an argument: -"+name), strings.Join(path, " "))
				}
				i++
			}
			continue
		}
		if sub := cmd.Command(a); sub != nil {
			cmd, path = sub, append(path, sub.Name)
			continue
		}
		if len(cmd.Commands) > 0 {
			return args, nil
		}
		out := slices.Clone(args)
		if a == "help" || a == "h" {
			// The help command of urfave/cli v2 took no flag of the
			// command's: `secretrun run help --watch` is a usage error.
			if i+1 < len(args) && len(args[i+1]) > 1 && args[i+1][0] == '-' && args[i+1] != "--" {
				known, _, err := checkFlag(&cli.Command{}, args[i+1])
				if err == nil && !known {
					name, _, _ := strings.Cut(strings.TrimLeft(args[i+1], "-"), "=")
					err = errors.New("flag provided but not defined: -" + name)
				}
				if err != nil {
					return nil, withHelpHint(err, strings.Join(path, " "))
				}
			}
			out[i] = "--help"
			return out, nil
		}
		return slices.Insert(out, i, "--"), nil
	}
	return args, nil
}

// checkFlag reads a, which starts with '-', as a flag of cmd: whether cmd
// has it, and whether its value is the next argument. Its errors are those
// of Go's flag package that urfave/cli v3 would not raise.
func checkFlag(cmd *cli.Command, a string) (known, takesValue bool, err error) {
	dashes := 1
	if a[1] == '-' {
		dashes = 2
	}
	name, value, hasValue := strings.Cut(a[dashes:], "=")
	if name == "" || name[0] == '-' || a[dashes] == '=' {
		return false, false, fmt.Errorf("bad flag syntax: %s", a)
	}
	if first, _ := utf8.DecodeRuneInString(name); dashes == 1 && !unicode.IsLetter(first) {
		// urfave/cli would take it as an argument.
		return false, false, fmt.Errorf("flag provided but not defined: -%s", name)
	}
	if name == "help" || name == "h" {
		if hasValue {
			if _, err := strconv.ParseBool(value); err != nil {
				return false, false, fmt.Errorf("invalid boolean value %q for -%s: parse error", value, name)
			}
		}
		return true, false, nil
	}
	for _, f := range cmd.Flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if _, isBool := f.(*cli.BoolFlag); !isBool {
			return true, !hasValue, nil
		}
		if hasValue {
			if _, err := strconv.ParseBool(value); err != nil {
				return false, false, fmt.Errorf("invalid boolean value %q for -%s: parse error", value, name)
			}
		}
		return true, false, nil
	}
	return false, false, nil
}
