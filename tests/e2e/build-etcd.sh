#!/usr/bin/env bash
# Builds etcd and etcdctl from the Go module proxy into
#   ${KUBE_BUNDLE_CACHE:-$HOME/.cache/kube-bundle}/etcd/vX.Y.Z/{etcd,etcdctl}
# Usage: tests/e2e/build-etcd.sh [VERSION]   (default v3.7.3)
# A binary already cached whose --version reports the right version is kept as is.
# Fails loudly (non-zero) when it cannot build, e.g. without network.
set -euo pipefail

version=${1:-v3.7.3}
cache=${KUBE_BUNDLE_CACHE:-$HOME/.cache/kube-bundle}
dest=$cache/etcd/$version

die() {
	printf '\n*** build-etcd.sh: FAILED: %s\n*** The E2E tests need these binaries; they are never skipped.\n\n' "$*" >&2
	exit 1
}

[[ $version =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "not an etcd v3 version: '$version'"
command -v go >/dev/null || die "go is not installed"

# Succeeds when $1 exists and reports the wanted version:
# `etcd --version` prints "etcd Version: X.Y.Z", `etcdctl version` prints "etcdctl version: X.Y.Z".
is_good() {
	[[ -x $1 ]] || return 1
	local out
	case ${1##*/} in
	etcdctl) out=$("$1" version 2>/dev/null) || return 1 ;;
	*) out=$("$1" --version 2>/dev/null) || return 1 ;;
	esac
	grep -Eiq "^${1##*/} version: ${version#v}\$" <<<"$out"
}

if is_good "$dest/etcd" && is_good "$dest/etcdctl"; then
	echo "etcd $version: cached in $dest"
	exit 0
fi

mkdir -p "$dest"
work=$(mktemp -d "$dest/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS

mkdir "$work/mod"
cat >"$work/mod/go.mod" <<MOD
module kube-bundle-e2e/etcd

go 1.24

tool (
	go.etcd.io/etcd/etcdctl/v3
	go.etcd.io/etcd/server/v3
)
MOD
(
	cd "$work/mod"
	go get "go.etcd.io/etcd/server/v3@$version" "go.etcd.io/etcd/etcdctl/v3@$version"
	go mod tidy
) || die "could not resolve etcd $version from $(go env GOPROXY) (network?)"

for pair in etcd:go.etcd.io/etcd/server/v3 etcdctl:go.etcd.io/etcd/etcdctl/v3; do
	name=${pair%%:*}
	pkg=${pair#*:}
	(cd "$work/mod" && CGO_ENABLED=0 go build -trimpath -o "$work/$name" "$pkg") ||
		die "go build of $pkg@$version failed"
	is_good "$work/$name" || die "$name built but its --version does not say ${version#v}"
	mv -f "$work/$name" "$dest/$name"
done
echo "etcd $version: built into $dest in $((SECONDS - start)) s"
