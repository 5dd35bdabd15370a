package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/secretrun/secretrun/config"
	"github.com/secretrun/secretrun/providers"
	"github.com/secretrun/secretrun/providers/keyring"
)

func keyringCommand(d deps) *cli.Command {
	target := []cli.Flag{
		&cli.StringFlag{Name: "provider", Usage: "keyring provider `NAME` in the config (default: the only one)"},
		&cli.StringFlag{Name: "service", Usage: "keyring `SERVICE`, instead of a provider from the config"},
	}
	sub := func(name, usage string, action func(c *cli.Command, service, key string) error) *cli.Command {
		return &cli.Command{
			Name:      name,
			Usage:     usage,
			ArgsUsage: "KEY",
			Flags:     append(target, selectionFlags()...),
			Action: func(ctx context.Context, c *cli.Command) error {
				if c.NArg() != 1 {
					return fmt.Errorf("keyring %s takes one KEY; values never come from the command line (use stdin or the prompt)", name)
				}
				service, err := keyringService(c, d)
				if err != nil {
					return err
				}
				return action(c, service, c.Args().First())
			},
		}
	}
	return &cli.Command{
		Name:  "keyring",
		Usage: "manage local secrets in the OS keyring",
		Commands: []*cli.Command{
			sub("set", "store KEY; the value is read from stdin or a no-echo prompt", func(c *cli.Command, service, key string) error {
				v, err := newPrompter(d).readAll("value for " + key)
				if err != nil {
					return err
				}
				if v.Len() == 0 {
					return fmt.Errorf("empty value for %s: nothing stored", key)
				}
				if err := d.keyring.Set(service, key, v); err != nil {
					return fmt.Errorf("keyring set %s/%s: %w", service, key, err)
				}
				fmt.Fprintf(d.stderr, "secretrun: stored %s in keyring service %q\n", key, service)
				return nil
			}),
			sub("get", "print the value of KEY", func(c *cli.Command, service, key string) error {
				v, err := d.keyring.Get(service, key)
				if err != nil {
					return fmt.Errorf("keyring get %s/%s: %w", service, key, err)
				}
				_, err = fmt.Fprintln(d.stdout, v.Reveal())
				return err
			}),
			sub("delete", "remove KEY", func(c *cli.Command, service, key string) error {
				if err := d.keyring.Delete(service, key); err != nil {
					return fmt.Errorf("keyring delete %s/%s: %w", service, key, err)
				}
				return nil
			}),
		},
	}
}

// keyringService is --service, or the service of the config's keyring
// provider (--provider, or the only one).
func keyringService(c *cli.Command, d deps) (string, error) {
	if s := c.String("service"); s != "" {
		return s, nil
	}
	f, err := loadConfig(c, d)
	if errors.Is(err, config.ErrNoConfig) {
		return "", errors.New("no secretrun.yaml here or in a parent directory: pass --service NAME")
	}
	if err != nil {
		return "", err
	}
	name := c.String("provider")
	if name == "" {
		names := f.ProvidersOfType("keyring")
		switch len(names) {
		case 0:
			return "", fmt.Errorf("%s has no provider of type keyring: add one, or pass --service NAME", f.Name)
		case 1:
			name = names[0]
		default:
			return "", fmt.Errorf("%s has several keyring providers (%v): choose one with --provider", f.Name, names)
		}
	}
	p, err := f.Provider(d.registry, config.Selection{Environment: flag(c, "env"), Scope: flag(c, "scope"), Lookup: d.lookupEnv}, name, d.providerEnv())
	if err != nil {
		return "", err
	}
	service, ok := keyring.Service(p)
	if !ok {
		return "", fmt.Errorf("provider %q is not a keyring provider", name)
	}
	return service, nil
}

var _ providers.Keyring = keyring.OS{}
