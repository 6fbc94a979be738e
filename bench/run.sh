#!/usr/bin/env bash
# Measure wrapgate against the Node reference stack (stand-in in ../shared/peer)
# with the shared load harness (../shared/bench, wrk), in one run on this
# machine, and write the goals table (issue: performance).
#
#   bench/run.sh [OUT_DIR]        # needs: wrk, node/npm, iproute2 (ss), scripts/bootstrap done
#
# Four servers, each started fresh, alternating, for PASSES rounds (default 2):
#   peer              the peer, PEER_WORKERS=2 (one process per core)
#   wrapgate          the shipped production command as printed in the README:
#                     config/gunicorn.conf.py, its worker count and class, the local
#                     limiter at the default level, JSON logs, metrics
#   wrapgate-nolimit  the same with WRAPGATE_LIMITER=none (the limiter's cost)
#   floor             bench/floor.py: a bare WSGI callable calling the same plugin
#                     function under the same worker class and count (what Python
#                     cannot go below)
# Per-worker connection counts of the Python servers are sampled once a second
# (bench/conns.py) into OUT/<label>.conns.jsonl. Loopback only; every run is
# bounded by the harness (DURATION, WARMUP seconds per scenario).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared}
OUT=${1:-$(mktemp -d /tmp/wrapgate-bench-XXXX)}
PASSES=${PASSES:-2}
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
TOKEN=bench-token
PY=$ROOT/.venv/bin/python
PORT=7200

PEER=$(mktemp -d /tmp/wrapgate-peer-XXXX)
cp -r "$SHARED/peer/." "$PEER/"
(cd "$PEER" && npm ci --silent >/dev/null 2>&1)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$PEER"; }
trap cleanup EXIT

wait_up() { for _ in $(seq 200); do curl -sf "$1/livez" >/dev/null && return 0; sleep 0.1; done; return 1; }
wait_any() { for _ in $(seq 200); do curl -s -o /dev/null "$1/" && return 0; sleep 0.1; done; return 1; }

# The bench connector's entry point is published by a .dist-info made here, as tests/support.py does.
mkdir -p "$ROOT/bench/wrapgate_bench-0.dist-info"
printf 'Metadata-Version: 2.1\nName: wrapgate-bench\nVersion: 0\n' > "$ROOT/bench/wrapgate_bench-0.dist-info/METADATA"
printf '[wrapgate]\nbench = wrapgate_bench\n' > "$ROOT/bench/wrapgate_bench-0.dist-info/entry_points.txt"
# The shipped worker class and count, as config/gunicorn.conf.py computes them on this machine.
read -r WORKER_CLASS WORKERS < <(WRAPGATE_SYSTEM_TOKEN=x "$PY" -c '
import runpy; c = runpy.run_path("config/gunicorn.conf.py"); print(c["worker_class"], c["workers"])')

suite() {  # label pid pass [bench args]
  local label=$1 pid=$2 pass=$3; shift 3
  PASSES=1 "$SHARED/bench/suite.sh" "$label" "$pid" "http://127.0.0.1:$PORT" "$TOKEN" "$OUT/$label.p$pass.jsonl" "$@"
  # suite.sh labels its single pass '#1': name it by the round instead.
  sed -i "s/\"$label#1\"/\"$label#$pass\"/" "$OUT/$label.p$pass.jsonl"
}

run_peer() {
  (cd "$PEER" && PORT=$PORT TOKEN=$TOKEN PEER_WORKERS=2 exec node server.js >/dev/null 2>&1) &
  local pid=$!
  wait_up "http://127.0.0.1:$PORT"
  suite peer "$pid" "$1"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_python() {  # label pass command...
  local label=$1 pass=$2; shift 2
  "$@" >"$OUT/$label.p$pass.log" 2>&1 &
  local pid=$!
  wait_any "http://127.0.0.1:$PORT"
  "$PY" bench/conns.py "$PORT" "$pid" "$OUT/$label.conns.jsonl" &
  local sampler=$!
  suite "$label" "$pid" "$pass" --fn-prefix bench.
  kill "$sampler" 2>/dev/null || true
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

gateway_env=(env PYTHONPATH="$ROOT/bench" WRAPGATE_PLUGINS=bench WRAPGATE_SYSTEM_TOKEN=$TOKEN
             WRAPGATE_BIND=127.0.0.1:$PORT)
for pass in $(seq 1 "$PASSES"); do
  run_peer "$pass"
  run_python wrapgate "$pass" "${gateway_env[@]}" \
    "$PY" -m gunicorn -c config/gunicorn.conf.py "gateway.app:create_app()"
  run_python wrapgate-nolimit "$pass" "${gateway_env[@]}" WRAPGATE_LIMITER=none \
    "$PY" -m gunicorn -c config/gunicorn.conf.py "gateway.app:create_app()"
  run_python floor "$pass" env PYTHONPATH="$ROOT/bench" \
    "$PY" -m gunicorn -k "$WORKER_CLASS" -w "$WORKERS" -b "127.0.0.1:$PORT" --chdir bench floor:app
done

cat "$OUT"/*.p*.jsonl > "$OUT/all.jsonl"
"$PY" bench/report.py "$OUT" | tee "$OUT/summary.md"
echo "raw results: $OUT"
