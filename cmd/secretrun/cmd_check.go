package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/secretrun/secretrun/inject"
	"github.com/secretrun/secretrun/providers"
)

func checkCommand(d deps) *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "validate the config, reach and authenticate to every provider of the environment, and warn about .env files",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "offline", Usage: "validate the config alone; contact no provider"},
		},
		Action: func(c *cli.Context) error {
			f, err := loadConfig(c, d)
			if err != nil {
				return err
			}
			p, err := planFile(c, d, f)
			if err != nil {
				return err
			}
			defer closeProviders(p, d)
			fmt.Fprintf(d.stdout, "config %s: valid; environment %q has %d sources\n", f.Name, p.Environment, len(p.Sources))
			for _, w := range dotenvWarnings(filepath.Dir(f.Name)) {
				d.providerEnv().Warn("%s", w)
			}
			if c.Bool("offline") {
				return nil
			}
			return checkSources(c, d, p.Sources, p.Providers)
		},
	}
}

// checkSources fetches every source and reports each one, so that one run
// shows every problem rather than the first.
func checkSources(c *cli.Context, d deps, sources []*providers.Source, provs map[string]providers.Provider) error {
	byProvider := map[string][]*providers.Source{}
	for _, s := range sources {
		byProvider[s.Provider] = append(byProvider[s.Provider], s)
	}
	names := make([]string, 0, len(byProvider))
	for n := range byProvider {
		names = append(names, n)
	}
	sort.Strings(names)
	failed := 0
	for _, name := range names {
		srcs := byProvider[name]
		results, err := provs[name].Fetch(c.Context, srcs)
		if err != nil {
			failed += len(srcs)
			fmt.Fprintf(d.stdout, "FAIL  provider %s: %v\n", name, err)
			continue
		}
		for i, src := range srcs {
			r := results[i]
			if r.Err == nil {
				_, r.Err = inject.Assemble([]*providers.Source{src}, []providers.Result{r})
			}
			switch {
			case r.Err == nil:
				fmt.Fprintf(d.stdout, "ok    %s %s (%s): %d fields\n", name, src.Ref, src.Pos, len(r.Fields))
			case src.Optional && errors.Is(r.Err, providers.ErrNotFound):
				fmt.Fprintf(d.stdout, "ok    %s %s (%s): missing, optional\n", name, src.Ref, src.Pos)
			default:
				failed++
				fmt.Fprintf(d.stdout, "FAIL  %s %s (%s): %v\n", name, src.Ref, src.Pos, strings.TrimPrefix(r.Err.Error(), src.Pos+": "))
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("check: %d of %d sources failed", failed, len(sources))
	}
	return nil
}
