"""Sample how many established connections each gunicorn worker holds.

    python bench/conns.py PORT MASTER_PID OUT.jsonl   (runs until killed)

Once a second: one JSON line ``{"t": ..., "workers": {pid: connections}}``,
read from ``ss`` (iproute2). Shows whether the kernel's accept spreads a
scenario's keep-alive connections evenly over the workers.
"""

import json
import re
import subprocess
import sys
import time


def workers(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def sample(port: int, master: int) -> dict[int, int]:
    counts = dict.fromkeys(workers(master), 0)
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True
    ).stdout
    for pid in re.findall(r"pid=(\d+)", out):
        if int(pid) in counts:
            counts[int(pid)] += 1
    return counts


def main() -> None:
    port, master, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    with open(path, "a") as out:
        while True:
            line = {"t": round(time.time(), 1), "workers": sample(port, master)}
            out.write(json.dumps(line) + "\n")
            out.flush()
            time.sleep(1)


if __name__ == "__main__":
    main()
