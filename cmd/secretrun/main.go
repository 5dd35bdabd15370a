// Command secretrun starts a program with its secrets in its environment,
// fetched from a secret manager and never written to disk.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args, systemDeps()))
}
