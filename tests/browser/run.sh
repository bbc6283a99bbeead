#!/usr/bin/env bash
# The playground's browser test: starts `jitbot playground` (built-in example catalog,
# a free loopback port) in the background, drives it with Debian's headless Chromium
# through playwright-core, and stops it. Screenshots land in target/.
# Needs: target/debug/jitbot (cargo build), /usr/bin/chromium (apt-get install -y
# chromium) and `npm ci` in this folder; .ci/run sees to all three.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
bin=${JITBOT_BIN:-$root/target/debug/jitbot}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

[ -x "$bin" ] || { echo "no $bin: run cargo build first" >&2; exit 1; }
[ -x "$CHROMIUM" ] || { echo "no $CHROMIUM: apt-get install -y chromium" >&2; exit 1; }
[ -d node_modules/playwright-core ] || { echo "run npm ci in $(pwd) first" >&2; exit 1; }

node --test mrkdwn.test.mjs

log=$(mktemp)
env -u REDIS_URL -u JITBOT_CONFIG "$bin" playground --listen 127.0.0.1:0 >"$log" 2>&1 &
pid=$!
stop() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
}
trap stop EXIT

url=""
for _ in $(seq 200); do
  url=$(sed -n 's/^jitbot playground: open //p' "$log")
  [ -n "$url" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "the playground exited:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -n "$url" ] || { echo "the playground printed no URL:" >&2; cat "$log" >&2; exit 1; }
echo "playground at $url"

PLAYGROUND_URL="$url" SCREENSHOT_DIR="$root/target" node playground.mjs
