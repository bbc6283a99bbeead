#!/usr/bin/env bash
# Builds a real kube-apiserver v1.20.2 for jitbot's tests, offline, from Debian
# bookworm's `kubernetes` source package (its upstream tarball ships the whole vendor/
# tree, so no Go module download is needed). etcd comes from Debian's etcd-server.
#
# Usage: scripts/realk8s/build.sh [kube-apiserver] [kube-controller-manager] [kubectl]
#
# Everything goes under $REALK8S_HOME (default ~/.cache/jitbot-realk8s): ~5 min and
# ~2.3 GB the first time. When the binaries are there it returns at once, so CI can call
# it on every run and pay the build only on a fresh machine.
set -euo pipefail

REALK8S_HOME=${REALK8S_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/jitbot-realk8s}
WHAT=("${@:-kube-apiserver}")
log() { echo "[realk8s] $*" >&2; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "missing: $*; install them (sudo apt-get install -y $*) and run again"
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# start.sh needs these to run the server, even when the binaries are cached.
missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
[ ${#missing[@]} = 0 ] || apt_install "${missing[@]}"

# Only what is not built yet.
todo=()
for w in "${WHAT[@]}"; do [ -x "$REALK8S_HOME/bin/$w" ] || todo+=("$w"); done
if [ ${#todo[@]} = 0 ]; then
  log "already built in $REALK8S_HOME/bin"
  exit 0
fi

command -v go >/dev/null || apt_install golang-go
mkdir -p "$REALK8S_HOME/src" "$REALK8S_HOME/bin"
SRC=$REALK8S_HOME/src/kubernetes-1.20.2

# 1. The source. `apt-get source` needs a deb-src entry, which Debian images often lack.
if [ ! -d "$SRC/vendor" ]; then
  if [ -z "$(apt-cache showsrc kubernetes 2>/dev/null)" ]; then
    [ "$(id -u)" = 0 ] || { log "add a deb-src entry for bookworm main and run again"; exit 1; }
    cat > /etc/apt/sources.list.d/jitbot-realk8s-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
  fi
  log "fetching Debian's kubernetes source package"
  (cd "$REALK8S_HOME/src" && apt-get source -d kubernetes >/dev/null 2>&1 \
    && tar xzf kubernetes_1.20.5+really1.20.2.orig.tar.gz)
fi

# 2. The vendored reflect2 v1.0.1 crashes the server under Go >= 1.18 ("fatal error:
# fault" on the first JSON response). Debian packages 1.0.2, which fixes it.
R=$SRC/vendor/github.com/modern-go/reflect2
if [ ! -f "$R/go_above_118.go" ]; then
  log "replacing vendored reflect2 with Debian's 1.0.2"
  work=$REALK8S_HOME/src/reflect2
  rm -rf "$work" && mkdir -p "$work"
  (cd "$work" && apt-get download golang-github-modern-go-reflect2-dev >/dev/null 2>&1 \
    && dpkg-deb -x golang-github-modern-go-reflect2-dev_*.deb deb)
  cp "$R/LICENSE" "$work/LICENSE"
  rm -rf "$R" && mkdir -p "$R"
  cp "$work"/deb/usr/share/gocode/src/github.com/modern-go/reflect2/*.{go,s} "$R/"
  rm -f "$R"/*_test.go
  cp "$work/LICENSE" "$R/LICENSE"
fi

# 3. Kubernetes 1.20 builds in GOPATH mode (its hack/ scripts set GO111MODULE=off);
# module mode fails. Nothing may be downloaded, hence GOPROXY=off.
mkdir -p "$REALK8S_HOME/gopath/src/k8s.io"
ln -sfn "$SRC" "$REALK8S_HOME/gopath/src/k8s.io/kubernetes"
export CGO_ENABLED=0 GO111MODULE=off GOFLAGS= GOPROXY=off \
  GOPATH=$REALK8S_HOME/gopath GOCACHE=$REALK8S_HOME/gocache
cd "$REALK8S_HOME/gopath/src/k8s.io/kubernetes"

# 4. The tarball lacks pkg/generated/openapi/zz_generated.openapi.go. Generate it with
# the vendored openapi-gen over every package tagged +k8s:openapi-gen= (the same inputs
# as the Makefile's openapi target).
if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
  log "generating the OpenAPI definitions"
  go build -o "$REALK8S_HOME/bin/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
  dirs=$(find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print \
    | sed 's|^./staging/src|vendor|; s|^./||' | xargs grep --color=never -l '^// *+k8s:' \
    | grep -v '^vendor/k8s.io/code-generator/\|^vendor/k8s.io/sample-apiserver/' \
    | xargs grep --color=never -l '+k8s:openapi-gen=' | xargs -n1 dirname | LC_ALL=C sort -u \
    | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
  "$REALK8S_HOME/bin/openapi-gen" --logtostderr -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi \
    -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
    -r "$REALK8S_HOME/openapi_violations.report"
fi

# 5. Stamp the version the way hack/lib/version.sh would, so clients see v1.20.2.
V=k8s.io/kubernetes/vendor/k8s.io
ldflags="-s -w"
for pkg in component-base/version client-go/pkg/version; do
  ldflags+=" -X $V/$pkg.gitVersion=v1.20.2 -X $V/$pkg.gitMajor=1 -X $V/$pkg.gitMinor=20"
done
ldflags+=" -X $V/component-base/version.gitTreeState=clean"
for w in "${todo[@]}"; do
  log "building $w"
  go build -ldflags "$ldflags" -o "$REALK8S_HOME/bin/$w" "./cmd/$w"
done
log "built ${todo[*]} in $REALK8S_HOME/bin"
