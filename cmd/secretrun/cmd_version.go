package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v3"
)

// version is set at release time with -ldflags "-X main.version=v1.2.3".
var version = ""

func versionCommand(d deps) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print secretrun's version",
		Action: func(ctx context.Context, c *cli.Command) error {
			v := version
			if v == "" {
				v = "(devel)"
				if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
					v = bi.Main.Version
				}
			}
			_, err := fmt.Fprintf(d.stdout, "secretrun %s %s %s/%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
