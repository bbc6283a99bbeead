#!/usr/bin/env bash
# Starts a real kube-apiserver (v1.20.2, built by build.sh) backed by a real etcd, both
# listening on 127.0.0.1 only. Prints the path of an admin kubeconfig as the last line
# of stdout; everything else goes to stderr. Stop with stop.sh (same REALK8S_RUN).
#
#   export KUBECONFIG=$(scripts/realk8s/start.sh)
#
# Environment:
#   REALK8S_HOME         where build.sh put the binaries (default ~/.cache/jitbot-realk8s)
#   REALK8S_RUN          state dir: certs, tokens, etcd data, logs, PIDs
#                        (default $REALK8S_HOME/run); wiped at start unless REALK8S_KEEP=1
#   ETCD_PORT            etcd client port (default 2379)
#   ETCD_PEER_PORT       etcd peer port (default ETCD_PORT+1)
#   APISERVER_PORT       kube-apiserver HTTPS port (default 6443)
#   REALK8S_EXTRA_TOKENS a file of more static tokens, appended to tokens.csv, in the
#                        apiserver's format: token,user,uid[,"group1,group2"]. Lets a test
#                        authenticate as a least-privilege user.
#   WITH_KCM=1           also run kube-controller-manager (namespace deletion, garbage
#                        collection), if build.sh built it
set -euo pipefail

REALK8S_HOME=${REALK8S_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/jitbot-realk8s}
RUN=${REALK8S_RUN:-$REALK8S_HOME/run}
ETCD_PORT=${ETCD_PORT:-2379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-$((ETCD_PORT + 1))}
APISERVER_PORT=${APISERVER_PORT:-6443}
APISERVER_BIN=$REALK8S_HOME/bin/kube-apiserver
KCM_BIN=$REALK8S_HOME/bin/kube-controller-manager
ETCD_BIN=$(command -v etcd || true)

log() { echo "[realk8s] $*" >&2; }
fail() { log "$*"; exit 1; }
alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

[ -x "$APISERVER_BIN" ] || fail "missing $APISERVER_BIN: run scripts/realk8s/build.sh"
[ -n "$ETCD_BIN" ] || fail "missing etcd: run scripts/realk8s/build.sh (or apt-get install etcd-server)"

if alive apiserver; then
  log "already running (pid $(cat "$RUN/apiserver.pid"))"
  echo "$RUN/kubeconfig"
  exit 0
fi

[ "${REALK8S_KEEP:-0}" = 1 ] || rm -rf "$RUN"
mkdir -p "$RUN/certs" "$RUN/etcd"

# Whatever makes us exit before the end, leave no etcd or apiserver behind.
stop_started() { for p in apiserver etcd; do alive $p && kill "$(cat "$RUN/$p.pid")"; done; }
trap stop_started EXIT

# Credentials: a service-account signing key (TokenRequest works) and a static bearer
# token for a system:masters admin. The apiserver makes its own self-signed serving
# certificate in certs/, which the kubeconfig trusts.
[ -f "$RUN/sa.key" ] || openssl genrsa -out "$RUN/sa.key" 2048 2>/dev/null
[ -f "$RUN/token" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/token"
TOKEN=$(cat "$RUN/token")
echo "$TOKEN,admin,admin-uid,system:masters" > "$RUN/tokens.csv"
if [ -n "${REALK8S_EXTRA_TOKENS:-}" ]; then
  [ -f "$REALK8S_EXTRA_TOKENS" ] || fail "REALK8S_EXTRA_TOKENS=$REALK8S_EXTRA_TOKENS is not a file"
  cat "$REALK8S_EXTRA_TOKENS" >> "$RUN/tokens.csv"
fi

"$ETCD_BIN" --name realk8s --data-dir "$RUN/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "realk8s=http://127.0.0.1:$ETCD_PEER_PORT" \
  --listen-metrics-urls "" \
  >"$RUN/etcd.log" 2>&1 &
echo $! > "$RUN/etcd.pid"

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1 && break
  alive etcd || { tail -20 "$RUN/etcd.log" >&2; fail "etcd died (log above)"; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1 || fail "etcd not healthy after 10s"
log "etcd up on 127.0.0.1:$ETCD_PORT (pid $(cat "$RUN/etcd.pid"))"

# --insecure-port 0: no unauthenticated port. --endpoint-reconciler-type none: there
# are no nodes or kube-proxy to reconcile the `kubernetes` Service for.
"$APISERVER_BIN" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
  --secure-port "$APISERVER_PORT" --insecure-port 0 \
  --cert-dir "$RUN/certs" \
  --token-auth-file "$RUN/tokens.csv" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$RUN/sa.key" \
  --service-account-signing-key-file "$RUN/sa.key" \
  --api-audiences https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range 10.0.0.0/24 \
  --endpoint-reconciler-type none \
  --profiling=false \
  >"$RUN/apiserver.log" 2>&1 &
echo $! > "$RUN/apiserver.pid"

cat > "$RUN/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: realk8s
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $RUN/certs/apiserver.crt
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: realk8s
  context: {cluster: realk8s, user: admin, namespace: default}
current-context: realk8s
KUBECONFIG

# Ready means /readyz answers and the bootstrap controller has made `default`; -k only
# for /readyz because the certificate may not be written yet when polling starts.
auth=(-H "Authorization: Bearer $TOKEN")
ready=0
for _ in $(seq 1 600); do
  if curl -fsS -k "${auth[@]}" "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1 \
    && curl -fsS --cacert "$RUN/certs/apiserver.crt" "${auth[@]}" \
      "https://127.0.0.1:$APISERVER_PORT/api/v1/namespaces/default" >/dev/null 2>&1; then
    ready=1
    break
  fi
  alive apiserver || { tail -30 "$RUN/apiserver.log" >&2; fail "kube-apiserver died (log above)"; }
  sleep 0.1
done
if [ $ready != 1 ]; then
  tail -30 "$RUN/apiserver.log" >&2
  fail "kube-apiserver not ready after 60s (log above)"
fi
log "kube-apiserver ready on https://127.0.0.1:$APISERVER_PORT (pid $(cat "$RUN/apiserver.pid"))"

if [ "${WITH_KCM:-0}" = 1 ]; then
  [ -x "$KCM_BIN" ] || fail "WITH_KCM=1 but $KCM_BIN is missing: run build.sh kube-apiserver kube-controller-manager"
  "$KCM_BIN" --kubeconfig "$RUN/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 --port 0 \
    --controllers namespace,garbagecollector \
    --use-service-account-credentials=false --leader-elect=false \
    >"$RUN/kcm.log" 2>&1 &
  echo $! > "$RUN/kcm.pid"
  log "kube-controller-manager started (pid $(cat "$RUN/kcm.pid"))"
fi

trap - EXIT
echo "$RUN/kubeconfig"
