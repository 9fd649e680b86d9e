#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kubectl from the Go module proxy into the user's cache, once per
# version. The tests' Kubernetes fixture (test/support/kube/cluster.ts) starts them; .ci/run calls this before
# `pnpm test` so the build is not charged to a test's timeout.
#
# Why a module of our own: `go install k8s.io/kubernetes/cmd/...@v1.x` is refused because k8s.io/kubernetes replaces its
# 33 staging modules (k8s.io/api, k8s.io/client-go, ...) with local folders. A module that requires k8s.io/kubernetes
# and replaces each staging module with the published one at v0.<minor>.<patch> builds the same programs.
#
# Cost of a first build (2 cores): see the README ("Kubernetes tests"). Later runs find the binaries and exit at once.
#
# Usage: test/support/kube/build.sh            build what the cache lacks, print the cache folder
#        test/support/kube/build.sh --print-dir  print the cache folder only
# Env:   CORDUM_KUBE_DIR   cache folder (default ${XDG_CACHE_HOME:-~/.cache}/cordum-runbooks/kube/v<version>)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
version="$(tr -d '[:space:]' < "$here/VERSION")"
staging_version="v0.${version#*.}"
dir="${CORDUM_KUBE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cordum-runbooks/kube/v$version}"
programs=(kube-apiserver kube-controller-manager kubectl)

if [ "${1:-}" = "--print-dir" ]; then echo "$dir"; exit 0; fi

have_all() { for p in "${programs[@]}"; do [ -x "$dir/$p" ] || return 1; done; }
if have_all; then echo "$dir"; exit 0; fi

command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || {
  echo "kube-build: Go is needed to build kube-apiserver v$version once (PATH has no 'go'; install Go >= 1.26)" >&2
  exit 3
}
export PATH="$PATH:/usr/local/go/bin"
mkdir -p "$dir"

# One build at a time per cache folder: parallel test workers or two engineers on one machine wait for the first.
exec 9>"$dir/.build.lock"
flock 9
if have_all; then echo "$dir"; exit 0; fi

work="$dir/.build"
rm -rf "$work"
mkdir -p "$work"
cd "$work"

# The staging modules, read from k8s.io/kubernetes's own go.mod so a version bump needs no edit here.
gomod_json="$(go mod download -json "k8s.io/kubernetes@v$version")"
gomod_file="$(printf '%s\n' "$gomod_json" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$gomod_file")
[ "${#staging[@]}" -gt 0 ] || { echo "kube-build: no staging modules found in $gomod_file" >&2; exit 1; }

{
  echo "module cordum-runbooks.local/kube-build"
  echo
  sed -n 's/^go \(.*\)/go \1/p' "$gomod_file"
  echo
  echo "require k8s.io/kubernetes v$version"
  echo
  for m in "${staging[@]}"; do echo "replace $m => $m $staging_version"; done
} > go.mod

pkgs=()
for p in "${programs[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$p"); done

echo "kube-build: building ${programs[*]} v$version into $dir (first time only; about 22 CPU-minutes, 2.6 GB)" >&2
start=$(date +%s)
GOFLAGS=-mod=mod go get "${pkgs[@]/%/@v$version}" 2>"$work/get.log" || { cat "$work/get.log" >&2; exit 1; }
minor="${version#*.}"; minor="${minor%%.*}"
ldflags="-s -w"
for kv in "gitVersion=v$version" "gitMajor=${version%%.*}" "gitMinor=$minor" "gitTreeState=clean" \
          "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
  ldflags+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done
mkdir -p out
CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 5 go build -trimpath -ldflags "$ldflags" -o out/ "${pkgs[@]}"
for p in "${programs[@]}"; do mv -f "out/$p" "$dir/$p"; done
cd "$dir"
rm -rf "$work"
echo "kube-build: done in $(( $(date +%s) - start )) s" >&2
echo "$dir"
