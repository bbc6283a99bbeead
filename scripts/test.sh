#!/usr/bin/env bash
# jitbot's test command: installs what the tests need if it is missing, then runs
# every test. Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "jitbot tests need: $*; install them (e.g. sudo apt-get install -y $*) and run again" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The store tests run against a real redis-server (Debian's package), one per test.
if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server
fi

# The Kubernetes adapter is tested against a real kube-apiserver and etcd, which the
# tests start themselves (tests/support/kube.rs). build.sh installs etcd-server (and
# golang-go when it has to compile) and builds the apiserver once, about 5 minutes;
# afterwards it finds the cached binary and returns at once. The RBAC test applies
# the Roles `jitbot rbac` generates with kubectl: without one installed, build it from the same source.
realk8s=(kube-apiserver)
command -v kubectl >/dev/null || realk8s+=(kubectl)
scripts/realk8s/build.sh "${realk8s[@]}"

cargo test --all-targets "$@"
