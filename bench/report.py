"""The goals table of a bench/run.sh run, from its JSON lines.

    python bench/report.py OUT_DIR

Per scenario: req/s of wrapgate (as shipped) over the peer's, the p99 of both,
CPU ms per request of each and of the floor, and whether each goal is met.
Means over the passes of the run; the spread (min-max) is printed beside.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

#: scenario -> (min req/s ratio, p99 bound: "peer" or ms, max CPU ratio to the peer, max CPU ratio to the floor)
GOALS = {
    "ping": (1.5, "peer", 0.6, 1.25),
    "export-1mb": (1.5, "peer", 0.6, 1.25),
    "export-5mb": (1.5, "peer", 0.6, 1.25),
    "import-1000": (1.5, "peer", 0.6, 1.25),
    "io-100ms": (1.0, 150.0, 0.8, None),
}


def load(folder: Path) -> tuple[dict, dict]:
    runs: dict = defaultdict(list)
    rss: dict = defaultdict(list)
    for path in sorted(folder.glob("*.p*.jsonl")):
        for line in path.read_text().splitlines():
            d = json.loads(line)
            name = d["label"].split("#")[0]
            if "phase" in d:
                rss[(name, d["phase"])].append(d)
            elif "rps" in d:
                runs[(name, d["scenario"])].append(d)
    return runs, rss


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}" if len(values) > 1 else ""


def main() -> None:
    folder = Path(sys.argv[1])
    runs, rss = load(folder)
    print(
        "| scenario | req/s wrapgate / peer | p99 ms wrapgate vs peer | CPU ms/req wrapgate / peer / floor "
        "| CPU vs peer, vs floor | nolimit req/s / peer | goals |"
    )
    print("|---|---|---|---|---|---|---|")
    for scenario, (rps_goal, p99_goal, cpu_peer_goal, cpu_floor_goal) in GOALS.items():
        gw, peer = runs.get(("wrapgate", scenario), []), runs.get(("peer", scenario), [])
        floor, nolimit = runs.get(("floor", scenario), []), runs.get(("wrapgate-nolimit", scenario), [])
        if not gw or not peer or not mean([d["rps"] for d in peer]):
            print(f"| {scenario} | (missing or no request answered) | | | | | |")
            continue
        ratio = mean([d["rps"] for d in gw]) / mean([d["rps"] for d in peer])
        p99_gw, p99_peer = [d["lat_ms"]["p99"] for d in gw], [d["lat_ms"]["p99"] for d in peer]
        cpu = {
            k: mean([d["cpu_ms_per_req"] for d in v])
            for k, v in (("gw", gw), ("peer", peer), ("floor", floor))
            if v
        }
        nl = mean([d["rps"] for d in nolimit]) / mean([d["rps"] for d in peer]) if nolimit else float("nan")
        bound = mean(p99_peer) if p99_goal == "peer" else p99_goal
        met = [ratio >= rps_goal, mean(p99_gw) <= bound, cpu["gw"] <= cpu_peer_goal * cpu["peer"]]
        if cpu_floor_goal and "floor" in cpu:
            met.append(cpu["gw"] <= cpu_floor_goal * cpu["floor"])
        errors = sum(sum(d["errors"].values()) for d in gw)
        print(
            f"| {scenario} | {ratio:.2f}x | {mean(p99_gw):.0f} ({spread(p99_gw)}) vs {mean(p99_peer):.0f} "
            f"({spread(p99_peer)}) | {cpu['gw']:.2f} / {cpu['peer']:.2f} / {cpu.get('floor', float('nan')):.2f} "
            f"| {cpu['gw'] / cpu['peer']:.2f}x, {cpu['gw'] / cpu.get('floor', float('nan')):.2f}x "
            f"| {nl:.2f}x | {'all met' if all(met) else 'MISSED ' + str(met)}"
            f"{f' ({errors} errors)' if errors else ''} |"
        )
    print()
    print("| server | RSS idle (MiB) | RSS after the suite (MiB) | per worker after (MiB) |")
    print("|---|---|---|---|")
    for name in ("peer", "wrapgate", "wrapgate-nolimit", "floor"):
        after = rss.get((name, "after"), [])
        idle = rss.get((name, "idle"), [])
        if not after:
            continue
        per_worker = max(max(d["rss_kb_by_pid"].values()) for d in after) / 1024
        print(
            f"| {name} | {mean([d['rss_kb'] for d in idle]) / 1024:.0f} | "
            f"{mean([d['rss_kb'] for d in after]) / 1024:.0f} | {per_worker:.0f} (largest process) |"
        )


if __name__ == "__main__":
    main()
