#!/usr/bin/env bash
# Builds real Kubernetes control-plane binaries from the Go module proxy.
#
#   tests/e2e/build-kube.sh [VERSION...]      (no argument: every version in tests/e2e/kube-versions)
#
# Result: ${KUBE_BUNDLE_CACHE:-$HOME/.cache/kube-bundle}/kube/vX.Y.Z/{kube-apiserver,
# kube-controller-manager,kube-scheduler}: the whole master the oracle and end-to-end tests run.
# A cached binary whose --version prints "Kubernetes vX.Y.Z" is kept, so a warm run builds nothing.
#
# Recipe: a throw-away module requiring k8s.io/kubernetes vX.Y.Z,
# with one `replace k8s.io/<staging> => k8s.io/<staging> v0.Y.Z` for every staging module that
# k8s.io/kubernetes's own go.mod replaces; CGO_ENABLED=0 go build -tags providerless with the
# k8s.io/component-base/version ldflags so that --version is right.
#
# Any failure (no network, no go, a build error, a wrong --version) exits non-zero, loudly:
# the tests that need these binaries fail, they are never skipped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KUBE_BUNDLE_CACHE:-$HOME/.cache/kube-bundle}

components=(kube-apiserver kube-controller-manager kube-scheduler)

die() {
	printf '\n*** build-kube.sh: FAILED: %s\n*** The E2E and oracle tests need these binaries; they are never skipped.\n\n' "$*" >&2
	exit 1
}

# Succeeds when $1 is an executable whose --version prints exactly "Kubernetes $2".
is_good() {
	[[ -x $1 ]] || return 1
	local out
	out=$("$1" --version 2>/dev/null) || return 1
	[[ $out == "Kubernetes $2" ]]
}

build_version() {
	local version=$1 minor dest missing=() c start
	minor=${version#v1.}
	minor=${minor%%.*}
	dest=$cache/kube/$version
	start=$SECONDS

	for c in "${components[@]}"; do
		is_good "$dest/$c" "$version" || missing+=("$c")
	done
	if ((${#missing[@]} == 0)); then
		echo "kubernetes $version: cached (${components[*]}) in $dest"
		return 0
	fi
	echo "kubernetes $version: building ${missing[*]} ..."

	mkdir -p "$dest"
	# Inside the destination, so the final mv is a rename on one file system (atomic).
	work=$(mktemp -d "$dest/.build.XXXXXX")

	local modinfo gomod golang replaces
	if ! modinfo=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$version"); then
		printf '%s\n' "$modinfo" >&2
		die "cannot download k8s.io/kubernetes@$version from $(go env GOPROXY) (network? no such release?)"
	fi
	gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$modinfo")
	[[ -n $gomod && -f $gomod ]] || die "go mod download gave no go.mod for k8s.io/kubernetes@$version"

	golang=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
	# Every `k8s.io/x => ./staging/src/k8s.io/x` of the replace block becomes `k8s.io/x => k8s.io/x v0.Y.Z`.
	replaces=$(sed -n '/^replace (/,/^)/p' "$gomod" |
		sed -n "s|^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/src/k8s\.io/[A-Za-z0-9._-]*[[:space:]]*$|	\1 => \1 v0.${version#v1.}|p")
	[[ -n $replaces ]] || die "no staging replace lines found in $gomod"

	mkdir "$work/mod"
	{
		echo "module kube-bundle-e2e/kube"
		echo
		echo "go ${golang:-1.24}"
		echo
		echo "require k8s.io/kubernetes $version"
		echo
		echo "tool ("
		for c in "${components[@]}"; do
			echo "	k8s.io/kubernetes/cmd/$c"
		done
		echo ")"
		echo
		echo "replace ("
		echo "$replaces"
		echo ")"
	} >"$work/mod/go.mod"
	echo "kubernetes $version: $(grep -c ' => ' <<<"$replaces") staging modules replaced by v0.${version#v1.}"

	(cd "$work/mod" && go mod tidy) ||
		die "go mod tidy for k8s.io/kubernetes@$version failed (network? a staging module missing on the proxy?)"

	local ldflags="-X k8s.io/component-base/version.gitVersion=$version"
	ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
	ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
	local built
	for c in "${missing[@]}"; do
		built=$SECONDS
		(cd "$work/mod" && CGO_ENABLED=0 go build -tags providerless -trimpath -ldflags "$ldflags" \
			-o "$work/$c" "k8s.io/kubernetes/cmd/$c") ||
			die "go build of k8s.io/kubernetes/cmd/$c@$version failed"
		is_good "$work/$c" "$version" ||
			die "$c $version built, but --version prints '$("$work/$c" --version 2>&1 || true)'"
		mv -f "$work/$c" "$dest/$c"
		# Per binary, because the first one pays for the packages the others share.
		echo "kubernetes $version: $c built in $((SECONDS - built)) s"
	done
	rm -rf "$work"
	work=
	echo "kubernetes $version: built ${missing[*]} into $dest in $((SECONDS - start)) s"
}

command -v go >/dev/null || die "go is not installed"

versions=("$@")
if ((${#versions[@]} == 0)); then
	while IFS= read -r line; do
		line=${line%%#*}
		line=${line//[[:space:]]/}
		[[ -n $line ]] && versions+=("$line")
	done <"$here/kube-versions"
fi
((${#versions[@]} > 0)) || die "no version given and none in $here/kube-versions"
for v in "${versions[@]}"; do
	[[ $v =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "not a Kubernetes release: '$v' (want v1.Y.Z)"
done

work=
trap '[[ -z $work ]] || rm -rf "$work"' EXIT

mkdir -p "$cache/kube"
# One build at a time per cache (two CI jobs on one machine would otherwise double the work).
if command -v flock >/dev/null; then
	exec 9>"$cache/kube/.lock"
	flock 9
fi

total=$SECONDS
for v in "${versions[@]}"; do
	build_version "$v"
done
echo "build-kube.sh: ${versions[*]} ready in $((SECONDS - total)) s"
