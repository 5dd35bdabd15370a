package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v3"

	"github.com/secretrun/secretrun/config"
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
		Action: func(ctx context.Context, c *cli.Command) error {
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
			secrets, err := inject.Resolve(ctx, p.Sources, p.Providers)
			if err != nil {
				return err
			}
			if err := inject.RenderFiles(secrets, templates(p)); err != nil {
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
			at := v.Pos()
			if len(v.Overrides) > 0 {
				at += fmt.Sprintf(" (overrides %s)", v.Overrides[len(v.Overrides)-1].Pos)
			}
			shown := value(v)
			switch {
			case v.File && shown == masked:
				shown = fmt.Sprintf("file, %d bytes", v.Value.Len())
			case v.File:
				// A file's contents span lines; quoted, the table holds.
				shown = strconv.Quote(shown)
			case v.Hidden:
				shown += " (templates only)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, shown, v.Origin(), at)
		}
		return tw.Flush()
	},
	"dotenv": func(w io.Writer, vars []inject.Variable, value func(inject.Variable) string) error {
		for _, v := range vars {
			if note, ok := notAVariable(v); ok {
				fmt.Fprintln(w, note)
				continue
			}
			if _, err := fmt.Fprintf(w, "%s=%s\n", v.Name, dotenvQuote(value(v))); err != nil {
				return err
			}
		}
		return nil
	},
	"shell": func(w io.Writer, vars []inject.Variable, value func(inject.Variable) string) error {
		for _, v := range vars {
			if note, ok := notAVariable(v); ok {
				fmt.Fprintln(w, note)
				continue
			}
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
			// Kind is variable, file (the value is the file's contents)
			// or template-only (env: false).
			Kind string `json:"kind"`
			Size int    `json:"size,omitempty"`
		}
		out := make([]entry, len(vars))
		for i, v := range vars {
			out[i] = entry{Name: v.Name, Value: value(v), Provider: v.Source.Provider, Ref: v.Source.Ref.String(), Field: v.Field, Version: v.Version, Position: v.Pos(), Kind: "variable"}
			switch {
			case v.File:
				out[i].Kind, out[i].Size = "file", v.Value.Len()
			case v.Hidden:
				out[i].Kind = "template-only"
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	},
}

// notAVariable is the comment that stands for a file or a template-only
// value in a list of variables: neither is one, and a file's contents are
// not shown there.
func notAVariable(v inject.Variable) (string, bool) {
	switch {
	case v.File:
		return fmt.Sprintf("# %s: a memory-only file of %d bytes (%s), which secretrun run makes", v.Name, v.Value.Len(), v.Pos()), true
	case v.Hidden:
		return fmt.Sprintf("# %s: for templates only, env: false (%s)", v.Name, v.Pos()), true
	}
	return "", false
}

// templates are the plan's memory-only files rendered from templates.
func templates(p *config.Plan) []inject.Template {
	out := make([]inject.Template, len(p.Files))
	for i, t := range p.Files {
		out[i] = t
	}
	return out
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
