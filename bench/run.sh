#!/usr/bin/env bash
# Measure wrapgate against the Node reference stack (stand-in in ../shared/peer)
# with the shared load harness (../shared/bench, wrk), one after the other on
# this machine, and print the ratio table.
#
#   bench/run.sh [OUT_DIR]        # needs: wrk, node/npm, scripts/bootstrap done
#
# Servers: the peer with PEER_WORKERS=2 (one process per core), and wrapgate's
# production gunicorn (2 gevent workers) with the bench connector, once with the
# limiter off (like the peer, which has none) and once with the local limiter
# at level 25 (its cost). Loopback only; every run is bounded by the harness.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared}
OUT=${1:-$(mktemp -d /tmp/wrapgate-bench-XXXX)}
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
TOKEN=bench-token
PY=$ROOT/.venv/bin/python

PEER=$(mktemp -d /tmp/wrapgate-peer-XXXX)
cp -r "$SHARED/peer/." "$PEER/"
(cd "$PEER" && npm ci --silent >/dev/null 2>&1)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$PEER"; }
trap cleanup EXIT

wait_up() { for _ in $(seq 100); do curl -sf "$1/livez" >/dev/null && return 0; sleep 0.1; done; return 1; }

(cd "$PEER" && PORT=7100 TOKEN=$TOKEN PEER_WORKERS=2 exec node server.js >/dev/null 2>&1) &
PEER_PID=$!
wait_up http://127.0.0.1:7100
"$SHARED/bench/suite.sh" peer "$PEER_PID" http://127.0.0.1:7100 "$TOKEN" "$OUT/peer.jsonl"
kill "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true

run_gateway() {  # label limiter level
  local label=$1 limiter=$2 level=$3
  PYTHONPATH=$ROOT/bench WRAPGATE_PLUGINS=bench WRAPGATE_SYSTEM_TOKEN=$TOKEN WRAPGATE_WORKERS=2 \
    WRAPGATE_BIND=127.0.0.1:7200 WRAPGATE_LIMITER=$limiter WRAPGATE_DEFAULT_LEVEL=$level \
    WRAPGATE_LIMIT_WAIT=60 WRAPGATE_LOG_LEVEL=WARNING \
    "$PY" -m gunicorn -c config/gunicorn.conf.py "gateway.app:create_app()" >"$OUT/$label.log" 2>&1 &
  local pid=$!
  wait_up http://127.0.0.1:7200
  "$SHARED/bench/suite.sh" "$label" "$pid" http://127.0.0.1:7200 "$TOKEN" "$OUT/$label.jsonl" --fn-prefix bench.
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}
# The entry point is published by a .dist-info made here, as tests/support.py does.
mkdir -p "$ROOT/bench/wrapgate_bench-0.dist-info"
printf 'Metadata-Version: 2.1\nName: wrapgate-bench\nVersion: 0\n' > "$ROOT/bench/wrapgate_bench-0.dist-info/METADATA"
printf '[wrapgate]\nbench = wrapgate_bench\n' > "$ROOT/bench/wrapgate_bench-0.dist-info/entry_points.txt"
run_gateway wrapgate-nolimit none 25
run_gateway wrapgate-local25 local 25

python3 "$SHARED/bench/summarize.py" "$OUT/peer.jsonl" "$OUT/wrapgate-nolimit.jsonl" "$OUT/wrapgate-local25.jsonl" \
  --ref peer | tee "$OUT/summary.md"
echo "raw results: $OUT"
