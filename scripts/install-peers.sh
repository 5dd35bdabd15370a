#!/usr/bin/env bash
# Installs the tools secretrun is benchmarked against (chamber and sstart)
# from their Go modules, once per version, into a cache outside the
# repository, and prints the directory that holds them. Vault Agent is the
# Vault binary scripts/build-vault.sh builds.
#
# `go install module@version` asks the module proxy for version lists,
# which a proxy may refuse; the modules are downloaded first, and the
# install falls back to the local module cache for whatever the proxy
# does not answer.
set -euo pipefail

chamber_version=v2.14.1
sstart_version=v0.0.11
cache=${SECRETRUN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/secretrun}
dir=$cache/peers
stamp=$dir/versions

want="chamber $chamber_version sstart $sstart_version"
if [ -x "$dir/chamber" ] && [ -x "$dir/sstart" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
	echo "$dir"
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dir"
echo "installing chamber $chamber_version and sstart $sstart_version into $dir" >&2

proxy=$(go env GOPROXY)
proxy=${proxy%%[,|]*}
case "$proxy" in
"" | direct | off) proxy=https://proxy.golang.org ;;
esac
modcache=$(go env GOMODCACHE)

(
	cd "$work"
	go mod init peers >/dev/null 2>&1
	GOFLAGS=-mod=mod go mod download \
		"github.com/segmentio/chamber/v2@$chamber_version" \
		"github.com/dirathea/sstart@$sstart_version"
	export GOPROXY="$proxy|file://$modcache/cache/download" GOFLAGS=-mod=mod GOBIN="$work/bin"
	go install "github.com/segmentio/chamber/v2@$chamber_version"
	# sstart links a C library that needs libm spelled out.
	go install -ldflags=-extldflags=-lm "github.com/dirathea/sstart/cmd/sstart@$sstart_version"
)
mv "$work/bin/chamber" "$work/bin/sstart" "$dir/"
echo "$want" >"$stamp"
echo "$dir"
