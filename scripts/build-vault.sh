#!/usr/bin/env bash
# Builds the real Vault server from its Go module, once per version, into a
# cache outside the repository, and prints the binary's path.
#
# Newer Vault tags do not compile as a dependency (they were built against an
# unpublished in-tree sdk), so the versions below are pinned together, and the
# wrapper module is never tidied: tidy raises the sdk to one that breaks.
set -euo pipefail

vault_version=1.21.0
sdk_version=0.20.0
cache=${SECRETRUN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/secretrun}
bin=$cache/vault-$vault_version/vault

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/main.go" <<'GO'
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
GO
cat >"$work/go.mod" <<MOD
module vaultserver

go 1.24

require (
	github.com/hashicorp/vault v$vault_version
	github.com/hashicorp/vault/sdk v$sdk_version
)

replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3

replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
MOD

echo "building Vault $vault_version from its Go module (slow once, cached in $cache)" >&2
mkdir -p "$(dirname "$bin")"
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$bin.tmp" .)
mv "$bin.tmp" "$bin"
echo "$bin"
