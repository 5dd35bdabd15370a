// Command secretrun starts a program with its secrets in its environment,
// fetched from a secret manager and never written to disk.
package main

import (
	"context"
	"os"

	// First of secretrun's packages to initialise: collection is off
	// while the others do.
	_ "github.com/secretrun/secretrun/inject/startup"
)

func main() {
	os.Exit(run(context.Background(), os.Args, systemDeps()))
}
