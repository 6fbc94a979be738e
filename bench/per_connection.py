"""Latency of each keep-alive connection, to see whether a worker serves its
connections fairly (issue 17: some connections starved while others were served
back to back).

    python bench/per_connection.py --url http://127.0.0.1:8080 --token T --connections 8 --seconds 6

Each connection is a thread with its own keep-alive ``http.client`` connection,
calling ``bench.ping`` back to back; prints one line per connection (calls, p50,
p99, max in ms) and their spread. The client is Python: it measures fairness,
not the server's top speed (use ../shared/bench for that).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from urllib.parse import urlsplit


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _run(url: str, token: str, ident: int, until: float, out: list[float]) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = json.dumps(
        {
            "diy": True,
            "type": "wrapper",
            "function": "bench.ping",
            "options": {"connection": {"_id": f"per-connection-{ident % 16}", "type": "wrapper"}},
        }
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    while time.monotonic() < until:
        started = time.perf_counter()
        conn.request("POST", "/function", body, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"connection {ident}: HTTP {response.status}")
        out.append((time.perf_counter() - started) * 1000)
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6)
    args = parser.parse_args()
    until = time.monotonic() + args.seconds
    results: list[list[float]] = [[] for _ in range(args.connections)]
    threads = [
        threading.Thread(target=_run, args=(args.url, args.token, k, until, results[k]))
        for k in range(args.connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("connection  calls   p50 ms   p99 ms   max ms")
    for k, values in enumerate(results):
        print(
            f"{k:10d} {len(values):6d} {_percentile(values, 0.5):8.2f} "
            f"{_percentile(values, 0.99):8.2f} {max(values):8.2f}"
        )
    calls = [len(values) for values in results]
    p99s = [_percentile(values, 0.99) for values in results]
    print(
        f"calls per connection {min(calls)}-{max(calls)} (mean {statistics.mean(calls):.0f}); "
        f"p99 per connection {min(p99s):.2f}-{max(p99s):.2f} ms"
    )


if __name__ == "__main__":
    main()
