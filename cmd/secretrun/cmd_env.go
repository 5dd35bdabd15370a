package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/secretrun/secretrun/inject"
)

const masked = "********"

func envCommand(d deps) *cli.Command {
	return &cli.Command{
		Name:  "env",
		Usage: "show the variables an environment defines and where each comes from; values masked unless --reveal",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "table", Usage: "`FORMAT`: table, dotenv, json or shell"},
			&cli.BoolFlag{Name: "reveal", Usage: "print the values themselves"},
		},
		Action: func(c *cli.Context) error {
			format := c.String("format")
			write, ok := envFormats[format]
			if !ok {
				return fmt.Errorf("unknown --format %q: use table, dotenv, json or shell", format)
			}
			if c.Args().Present() {
				return fmt.Errorf("env takes no arguments; to run a command, use secretrun -- COMMAND")
			}
			p, err := plan(c, d)
			if err != nil {
				return err
			}
			defer closeProviders(p, d)
			secrets, err := inject.Resolve(c.Context, p.Sources, p.Providers)
			if err != nil {
				return err
			}
			reveal := c.Bool("reveal")
			value := func(v inject.Variable) string {
				if reveal {
					return v.Value.Reveal()
				}
				return masked
			}
			return write(d.stdout, secrets.Vars, value)
		},
	}
}

var envFormats = map[string]func(io.Writer, []inject.Variable, func(inject.Variable) string) error{
	"table": func(w io.Writer, vars []inject.Variable, value func(inject.Variable) string) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVALUE\tORIGIN\tDEFINED AT")
		for _, v := range vars {
			at := v.Source.Pos
			if len(v.Overrides) > 0 {
				at += fmt.Sprintf(" (overrides %s)", v.Overrides[len(v.Overrides)-1].Pos)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, value(v), v.Origin(), at)
		}
		return tw.Flush()
	},
	"dotenv": func(w io.Writer, vars []inject.Variable, value func(inject.Variable) string) error {
		for _, v := range vars {
			if _, err := fmt.Fprintf(w, "%s=%s\n", v.Name, dotenvQuote(value(v))); err != nil {
				return err
			}
		}
		return nil
	},
	"shell": func(w io.Writer, vars []inject.Variable, value func(inject.Variable) string) error {
		for _, v := range vars {
			if _, err := fmt.Fprintf(w, "export %s=%s\n", v.Name, shellQuote(value(v))); err != nil {
				return err
			}
		}
		return nil
	},
	"json": func(w io.Writer, vars []inject.Variable, value func(inject.Variable) string) error {
		type entry struct {
			Name     string `json:"name"`
			Value    string `json:"value"`
			Provider string `json:"provider"`
			Ref      string `json:"ref"`
			Field    string `json:"field,omitempty"`
			Version  string `json:"version,omitempty"`
			Position string `json:"position"`
		}
		out := make([]entry, len(vars))
		for i, v := range vars {
			out[i] = entry{Name: v.Name, Value: value(v), Provider: v.Source.Provider, Ref: v.Source.Ref.String(), Field: v.Field, Version: v.Version, Position: v.Source.Pos}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	},
}

// shellQuote quotes s for POSIX shells: inside single quotes nothing is
// special but the single quote itself.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// dotenvQuote writes a value the way dotenv parsers read double-quoted
// values, escapes and newlines included.
func dotenvQuote(s string) string {
	q := strconv.Quote(s)
	return strings.ReplaceAll(q, "$", `\$`)
}
