package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/secretrun/secretrun/status"
)

func statusCommand(d deps) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "list the secretrun processes on this machine that supervise a child, and the version of each secret the child holds",
		Description: `Each supervising secretrun (with --watch, --mask, leased secrets, or as
PID 1) answers on a Unix socket under $XDG_RUNTIME_DIR/secretrun, or a 0700
directory of the user's in the temporary directory; it answers its own
user and root only. root sees every user's. A command that secretrun
replaced itself with (exec) has no supervisor left: its start is in the
audit trail (audit.sink).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "table", Usage: "`FORMAT`: table or json"},
		},
		Action: func(ctx context.Context, c *cli.Command) error {
			format := c.String("format")
			if format != "table" && format != "json" {
				return fmt.Errorf("unknown --format %q: use table or json", format)
			}
			children, errs := status.List(status.Dirs(d.getenv))
			for _, err := range errs {
				fmt.Fprintf(d.stderr, "secretrun: warning: status: %v\n", err)
			}
			if format == "json" {
				if children == nil {
					children = []status.Child{}
				}
				enc := json.NewEncoder(d.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(children)
			}
			if len(children) == 0 {
				fmt.Fprintln(d.stderr, "secretrun: status: no supervised child on this machine")
				return nil
			}
			tw := tabwriter.NewWriter(d.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PID\tCHILD\tUID\tCOMMAND\tENV\tSOURCE\tVERSION\tSINCE")
			for _, ch := range children {
				env := ch.Environment
				if ch.Scope != "" {
					env += "/" + ch.Scope
				}
				if len(ch.Sources) == 0 {
					fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t-\t-\t-\n", ch.PID, ch.ChildPID, ch.User, ch.Command, env)
				}
				for _, s := range ch.Sources {
					version := s.Version
					if version == "" {
						version = "-"
					}
					fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", ch.PID, ch.ChildPID, ch.User, ch.Command, env,
						strings.TrimSpace(s.Provider+" "+s.Source), version, s.Since.Local().Format(time.RFC3339))
				}
			}
			return tw.Flush()
		},
	}
}
