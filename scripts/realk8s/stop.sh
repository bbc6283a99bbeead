#!/usr/bin/env bash
# Stops what start.sh started, by the PIDs it recorded in $REALK8S_RUN (never by name,
# so other servers on the machine are left alone). Safe to run twice.
set -uo pipefail

REALK8S_HOME=${REALK8S_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/jitbot-realk8s}
RUN=${REALK8S_RUN:-$REALK8S_HOME/run}

# Whether a PID is a live process. A killed server can linger as a zombie until
# whoever inherited it reaps it; `kill -0` still succeeds on a zombie, so read its state.
running() {
  kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]
}

# The apiserver before etcd, so it does not spend its last seconds retrying etcd.
for p in kcm apiserver etcd; do
  f=$RUN/$p.pid
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if running "$pid"; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -9 "$pid" 2>/dev/null
    echo "[realk8s] stopped $p (pid $pid)" >&2
  fi
  rm -f "$f"
done
exit 0
