package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
)

func loginCommand(d deps) *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "obtain credentials for PROVIDER and keep them in the OS keyring",
		ArgsUsage: "PROVIDER",
		Action: func(ctx context.Context, c *cli.Command) error {
			l, err := loginer(c, d)
			if err != nil {
				return err
			}
			if err := l.Login(ctx, newPrompter(d)); err != nil {
				return err
			}
			fmt.Fprintf(d.stderr, "secretrun: logged in to %s; credentials are in the OS keyring\n", c.Args().First())
			return nil
		},
	}
}

func logoutCommand(d deps) *cli.Command {
	return &cli.Command{
		Name:      "logout",
		Usage:     "remove the credentials `secretrun login` stored for PROVIDER",
		ArgsUsage: "PROVIDER",
		Action: func(ctx context.Context, c *cli.Command) error {
			l, err := loginer(c, d)
			if err != nil {
				return err
			}
			return l.Logout(ctx)
		},
	}
}

func loginer(c *cli.Command, d deps) (providers.Loginer, error) {
	if c.NArg() != 1 {
		return nil, fmt.Errorf("%s takes one PROVIDER, a name under providers: in the config", c.Name)
	}
	name := c.Args().First()
	f, err := loadConfig(c, d)
	if err != nil {
		return nil, err
	}
	p, err := f.Provider(d.registry, config.Selection{Environment: flag(c, "env"), Scope: flag(c, "scope"), Lookup: d.lookupEnv}, name, d.providerEnv())
	if err != nil {
		return nil, err
	}
	l, ok := p.(providers.Loginer)
	if !ok {
		return nil, fmt.Errorf("provider %q does not log in: its credentials come from its own settings or environment", name)
	}
	return l, nil
}
