package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/scan"
)

// exitFound is scan's status when it found a value, as grep and linters
// use 1 for "found".
const exitFound = 1

func scanCommand(d deps) *cli.Command {
	return &cli.Command{
		Name:      "scan",
		Usage:     "search the files, the git index (--staged) or every blob of the git history (--history) for the environment's real secret values and their encoded forms; exit 1 when one is found",
		ArgsUsage: "[PATH...]",
		Description: `The secrets are fetched as run fetches them, all or nothing, and each value
is searched for as it is and base64 (standard and URL alphabets, padded or
not, at any alignment), URL-escaped, JSON-escaped and hex encoded. Output
names the place, the variable, its source and the encoding; never the value
or any part of it. Values shorter than 4 bytes are not searched for.

PATH defaults to the git repository's top directory, or the working
directory outside one; .git directories are skipped. With --staged or
--history, PATH limits the search to those paths of the repository.

Exit status: 1 when a value was found, 0 when none was, 125 on errors.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "history", Usage: "search every blob reachable from any ref, naming the first commit that brought each finding in"},
			&cli.BoolFlag{Name: "staged", Usage: "search the index, what the next commit will hold (for a pre-commit hook)"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "`FORMAT`: text (one line per finding) or json"},
		},
		Action: func(ctx context.Context, c *cli.Command) error {
			format := c.String("format")
			if format != "text" && format != "json" {
				return fmt.Errorf("unknown --format %q: use text or json", format)
			}
			wd, err := d.getwd()
			if err != nil {
				return err
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
			s := scan.New(scanValues(secrets))
			if skipped := s.Skipped(); len(skipped) > 0 {
				d.providerEnv().Warn("not searching for %s: values shorter than %d bytes would be found everywhere", strings.Join(skipped, ", "), scan.MinLen)
			}
			if s.Empty() {
				d.providerEnv().Warn("scan: environment %q has no value to search for", p.Environment)
				return writeFindings(d.stdout, format, nil)
			}

			var found []scan.Finding
			var stats scan.Stats
			add := func(fds []scan.Finding, st scan.Stats, err error) error {
				found = append(found, fds...)
				stats.Files += st.Files
				stats.Bytes += st.Bytes
				return err
			}
			paths := c.Args().Slice()
			gitModes := c.Bool("history") || c.Bool("staged")
			if !gitModes {
				roots := paths
				if len(roots) == 0 {
					roots = []string{"."}
					if top, err := scan.TopLevel(ctx, wd); err == nil {
						roots = []string{relative(wd, top)}
					}
				}
				if err := add(s.Tree(ctx, roots)); err != nil {
					return fmt.Errorf("scan: %w", err)
				}
			} else {
				top, err := scan.TopLevel(ctx, wd)
				if err != nil {
					return fmt.Errorf("scan: --history and --staged search a git repository: %w", err)
				}
				keep, err := pathFilter(wd, top, paths)
				if err != nil {
					return err
				}
				if c.Bool("staged") {
					if err := add(s.Staged(ctx, top, keep)); err != nil {
						return fmt.Errorf("scan --staged: %w", err)
					}
				}
				if c.Bool("history") {
					if err := add(s.History(ctx, top, keep)); err != nil {
						return fmt.Errorf("scan --history: %w", err)
					}
				}
			}
			if err := writeFindings(d.stdout, format, found); err != nil {
				return err
			}
			what := fmt.Sprintf("%d files, %s", stats.Files, byteSize(stats.Bytes))
			if len(found) == 0 {
				fmt.Fprintf(d.stderr, "secretrun: scan: no secret value found (%s)\n", what)
				return nil
			}
			noun := "findings"
			if len(found) == 1 {
				noun = "finding"
			}
			fmt.Fprintf(d.stderr, "secretrun: scan: %d %s (%s); rotate every value found: one that reached a file or a commit is leaked even once it is removed\n", len(found), noun, what)
			return childExit(exitFound)
		},
	}
}

// scanValues are the variables' values with their origins, for the
// scanner.
func scanValues(s *inject.Secrets) []scan.Value {
	out := make([]scan.Value, len(s.Vars))
	for i, v := range s.Vars {
		out[i] = scan.Value{Variable: v.Name, Source: v.Origin(), Value: v.Value}
	}
	return out
}

// pathFilter turns PATH arguments into a test of repository paths: a path
// is kept when it is one of them or under one.
func pathFilter(wd, top string, paths []string) (func(string) bool, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	var prefixes []string
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			p = filepath.Join(wd, p)
		}
		rel, err := filepath.Rel(top, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("scan: %s is outside the repository %s", p, top)
		}
		if rel == "." {
			return nil, nil
		}
		prefixes = append(prefixes, filepath.ToSlash(rel))
	}
	return func(path string) bool {
		for _, pre := range prefixes {
			if path == pre || strings.HasPrefix(path, pre+"/") {
				return true
			}
		}
		return false
	}, nil
}

// writeFindings prints one line per finding, or a JSON array.
func writeFindings(w io.Writer, format string, found []scan.Finding) error {
	if format == "json" {
		if found == nil {
			found = []scan.Finding{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(found)
	}
	for _, f := range found {
		where := fmt.Sprintf("%s:%d", f.Path, f.Line)
		switch {
		case f.Commit != "":
			where = shortCommit(f.Commit) + " " + where
		case f.Staged:
			where = "staged " + where
		}
		if _, err := fmt.Fprintf(w, "%s: %s from %s (%s)\n", where, f.Variable, f.Source, f.Encoding); err != nil {
			return err
		}
	}
	return nil
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// byteSize is n for people: 340 KB, 64.1 MB.
func byteSize(n int64) string {
	if n < 1e6 {
		return fmt.Sprintf("%d KB", (n+999)/1000)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}
