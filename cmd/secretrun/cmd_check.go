package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v3"

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
		Action: func(ctx context.Context, c *cli.Command) error {
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
			for _, t := range p.Files {
				fmt.Fprintf(d.stdout, "ok    template files.%s (%s): parses\n", t.Name(), t.Pos())
			}
			for _, w := range dotenvWarnings(filepath.Dir(f.Name)) {
				d.providerEnv().Warn("%s", w)
			}
			if c.Bool("offline") {
				return nil
			}
			return checkSources(ctx, d, p.Sources, p.Providers, templates(p))
		},
	}
}

// checkSources fetches every source and reports each one, so that one run
// shows every problem rather than the first.
func checkSources(ctx context.Context, d deps, sources []*providers.Source, provs map[string]providers.Provider, tmpls []inject.Template) error {
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
	read := map[*providers.Source]providers.Result{}
	for _, name := range names {
		srcs := byProvider[name]
		results, err := provs[name].Fetch(ctx, srcs)
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
			read[src] = results[i]
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
	return checkTemplates(d, sources, read, tmpls)
}

// checkTemplates renders every template from what the sources gave, to
// report a variable a template uses that the environment lacks.
func checkTemplates(d deps, sources []*providers.Source, read map[*providers.Source]providers.Result, tmpls []inject.Template) error {
	if len(tmpls) == 0 {
		return nil
	}
	results := make([]providers.Result, len(sources))
	for i, src := range sources {
		results[i] = read[src]
	}
	secrets, err := inject.Assemble(sources, results)
	if err != nil {
		return err
	}
	failed := 0
	for _, t := range tmpls {
		one := &inject.Secrets{Vars: slices.Clone(secrets.Vars)}
		if err := inject.RenderFiles(one, []inject.Template{t}); err != nil {
			failed++
			fmt.Fprintf(d.stdout, "FAIL  template files.%s: %v\n", t.Name(), err)
			continue
		}
		size := 0
		for _, v := range one.Vars {
			if v.Template == t {
				size = v.Value.Len()
			}
		}
		fmt.Fprintf(d.stdout, "ok    template files.%s (%s): renders, %d bytes\n", t.Name(), t.Pos(), size)
	}
	if failed > 0 {
		return fmt.Errorf("check: %d of %d templates failed", failed, len(tmpls))
	}
	return nil
}
