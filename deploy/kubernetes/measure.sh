#!/usr/bin/env bash
# Size the gateway pod's resources: run the production gunicorn with the base's
# settings (base/gateway.env: 2 workers, Redis limiter) and the bench connector,
# drive it with the shared load harness (../shared/bench, wrk), and print the
# process tree's memory (PSS: shared pages counted once, as the pod's cgroup
# counts them) at idle and its peak under load, and CPU seconds per scenario.
#
#   deploy/kubernetes/measure.sh [OUT_DIR]    # needs: wrk, redis-server, scripts/bootstrap done
set -euo pipefail
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
TOKEN=sizing-token PORT=7300 REDIS_PORT=7301
OUT=${1:-$(mktemp -d /tmp/wrapgate-sizing-XXXX)}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/../.." && ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared}

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
pids+=($!)

mkdir -p "$ROOT/bench/wrapgate_bench-0.dist-info"
printf 'Metadata-Version: 2.1\nName: wrapgate-bench\nVersion: 0\n' > "$ROOT/bench/wrapgate_bench-0.dist-info/METADATA"
printf '[wrapgate]\nbench = wrapgate_bench\n' > "$ROOT/bench/wrapgate_bench-0.dist-info/entry_points.txt"
# The base's settings, then what this machine needs instead (loopback, the bench plugin).
set -a
# shellcheck disable=SC1091
. deploy/kubernetes/base/gateway.env
set +a
unset WRAPGATE_SYSTEM_TOKEN_FILE
PYTHONPATH=$ROOT/bench WRAPGATE_PLUGINS=bench WRAPGATE_SYSTEM_TOKEN=$TOKEN WRAPGATE_BIND=127.0.0.1:$PORT \
  WRAPGATE_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0 WRAPGATE_DEFAULT_LEVEL=25 WRAPGATE_LIMIT_WAIT=60 \
  WRAPGATE_LOG_LEVEL=WARNING PROMETHEUS_MULTIPROC_DIR=$OUT/metrics \
  "$ROOT/.venv/bin/python" -m gunicorn -c config/gunicorn.conf.py "gateway.app:create_app()" >"$OUT/gateway.log" 2>&1 &
GATEWAY=$!
pids+=($GATEWAY)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.1; done

tree_pss_kib() {  # the gateway's master and every descendant
  local all=($GATEWAY) frontier=($GATEWAY) next total=0
  while [ ${#frontier[@]} -gt 0 ]; do
    next=()
    for pid in "${frontier[@]}"; do next+=($(pgrep -P "$pid" || true)); done
    all+=("${next[@]}"); frontier=("${next[@]}")
  done
  for pid in "${all[@]}"; do
    total=$((total + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)))
  done
  echo $total
}
echo "idle PSS: $(( $(tree_pss_kib) / 1024 )) MiB" | tee "$OUT/memory.txt"
( peak=0; while kill -0 $GATEWAY 2>/dev/null; do
    now=$(tree_pss_kib); [ "$now" -gt "$peak" ] && peak=$now && echo "$peak" > "$OUT/peak_kib"
    sleep 0.2; done ) &
pids+=($!)
PASSES=${PASSES:-1} "$SHARED/bench/suite.sh" k8s-base "$GATEWAY" "http://127.0.0.1:$PORT" "$TOKEN" "$OUT/k8s-base.jsonl" --fn-prefix bench.
echo "peak PSS under load: $(( $(cat "$OUT/peak_kib") / 1024 )) MiB" | tee -a "$OUT/memory.txt"
echo "after PSS: $(( $(tree_pss_kib) / 1024 )) MiB" | tee -a "$OUT/memory.txt"
python3 "$SHARED/bench/summarize.py" "$OUT/k8s-base.jsonl" | tee "$OUT/summary.md"
echo "raw results: $OUT"
