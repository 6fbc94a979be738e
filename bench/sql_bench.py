"""The sql connector against plain psycopg, on one PostgreSQL, in one run.

    .venv/bin/python bench/sql_bench.py [--rounds 7] [--profile]

Starts a throwaway PostgreSQL on a loopback port (the tests' pg_server: initdb,
pg_ctl), then, round after round, interleaved:

* import: 1,000 records through the gateway's call path (``sql.import``, insert)
  against psycopg ``executemany`` of the same rows in one transaction;
* update: the same 1,000 rows, changed, by key (``sql.import``, update) against
  psycopg ``executemany`` of ``UPDATE ... WHERE id = %s`` in one transaction;
* export: 10,123 rows, pages of 1,000, through the gateway's call path
  (``sql.export`` until ``lastPage``, each answer serialised to JSON as the gateway
  sends it) against a psycopg keyset loop (``WHERE id > %s ORDER BY id LIMIT
  1000``) that turns each page into dicts and JSON with orjson.

Both sides run in this process, so wall and CPU times compare like for like.
Prints per-round medians, the spread (min-max), and the ratios. ``--profile``
adds a pyinstrument profile of one gateway export (pip install pyinstrument
into the venv; it is not a dependency). Numbers are for comparing within one
run; the machine may be shared.
"""

from __future__ import annotations

import argparse
import decimal
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plugins" / "sql" / "tests"))

from pg_server import Postgres, connection  # noqa: E402

from gateway.testing import InProcessGateway  # noqa: E402
from wrapgate_sql import connector  # noqa: E402

EXPORT_ROWS = 10_123
IMPORT_ROWS = 1_000
PAGE = 1_000

SCHEMA = """
CREATE TABLE exports (id bigint PRIMARY KEY, name text NOT NULL, city text, balance numeric(12, 2),
                      updated_at timestamptz NOT NULL, active boolean NOT NULL);
INSERT INTO exports SELECT i, 'Customer ' || i, 'City ' || (i % 50), i * 1.25,
       timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute', i % 3 = 0
  FROM generate_series(1, {rows}) i;
CREATE TABLE imports (id bigint PRIMARY KEY, name text NOT NULL, city text, balance numeric(12, 2),
                      updated_at timestamptz NOT NULL, active boolean NOT NULL);
"""


def records() -> list[dict]:
    return [
        {
            "id": i,
            "name": f"Customer {i}",
            "city": f"City {i % 50}",
            "balance": round(i * 1.25, 2),
            "updated_at": f"2026-01-01T00:{i % 60:02d}:00+00:00",
            "active": i % 3 == 0,
        }
        for i in range(1, IMPORT_ROWS + 1)
    ]


def _parse(bench: Bench, body: bytes):
    wall, cpu = time.perf_counter(), time.process_time()
    value = orjson.loads(body)
    bench.parsing[0] += time.perf_counter() - wall
    bench.parsing[1] += time.process_time() - cpu
    return value


def _default(value):
    if isinstance(value, decimal.Decimal):
        return orjson.Fragment(str(value))
    raise TypeError


class Bench:
    def __init__(self, postgres: Postgres, database: str):
        self.dsn = postgres.url(database).replace("postgresql+psycopg", "postgresql")
        self.gateway = InProcessGateway({"sql": connector}, call_timeout=300).gateway
        self.parsing = [0.0, 0.0]  # (wall, cpu) spent parsing answers: the client's work, not measured
        self.connection = connection(postgres, database)
        self.records = records()
        self.updates = [dict(r, name=f"Renamed {r['id']}", active=not r["active"]) for r in self.records]
        # One connection kept open, as the gateway keeps its pool: connecting is not measured.
        self.conn = psycopg.connect(self.dsn)

    def truncate(self) -> None:
        with self.conn.transaction():
            self.conn.execute("TRUNCATE imports")

    def import_psycopg(self) -> None:
        rows = [tuple(r.values()) for r in self.records]
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO imports (id, name, city, balance, updated_at, active) VALUES (%s, %s, %s, %s, %s, %s)",
                rows,
            )

    def update_psycopg(self) -> None:
        rows = [(*list(r.values())[1:], r["id"]) for r in self.updates]
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(
                "UPDATE imports SET name = %s, city = %s, balance = %s, updated_at = %s, active = %s "
                "WHERE id = %s",
                rows,
            )

    def call(self, function: str, options: dict) -> tuple[int, dict]:
        """One call through the gateway's whole call path (validation, schemas, the
        deadline, the hook, serialisation), without HTTP; parsing its answer is not counted."""
        body = {"diy": True, "function": function, "options": options}
        answer = self.gateway.call(body, request_id="bench")
        return answer.status, _parse(self, answer.body)

    def import_gateway(self) -> None:
        status, results = self.call(
            "sql.import",
            {
                "connection": self.connection,
                "configuration": {"table": "imports"},
                "postMapData": self.records,
            },
        )
        assert status == 200 and all(r["statusCode"] == 200 for r in results), results[:3]

    def update_gateway(self) -> None:
        status, results = self.call(
            "sql.import",
            {
                "connection": self.connection,
                "configuration": {"table": "imports", "operation": "update"},
                "postMapData": self.updates,
            },
        )
        assert status == 200 and all(r == {"statusCode": 200, "id": str(i)} for i, r in enumerate(results, 1))

    def export_psycopg(self) -> int:
        count, after, conn = 0, 0, self.conn
        if True:
            while True:
                with conn.transaction():
                    cur = conn.execute(
                        "SELECT * FROM exports WHERE id > %s ORDER BY id LIMIT %s", (after, PAGE + 1)
                    )
                    names = [d.name for d in cur.description]
                    rows = cur.fetchall()
                page = rows[:PAGE]
                orjson.dumps({"data": [dict(zip(names, r, strict=True)) for r in page]}, default=_default)
                count += len(page)
                if len(rows) <= PAGE:
                    return count
                after = page[-1][0]

    def export_gateway(self) -> int:
        options = {
            "connection": self.connection,
            "configuration": {"table": "exports", "key": "id", "pageSize": PAGE},
        }
        count, state = 0, None
        while True:
            status, page = self.call("sql.export", dict(options, state=state))
            assert status == 200, page
            count += len(page["data"])
            if page["lastPage"]:
                return count
            state = page["state"]


def timed(bench: Bench, fn) -> tuple[float, float]:
    bench.parsing = [0.0, 0.0]
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall - bench.parsing[0], time.process_time() - cpu - bench.parsing[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="wrapgate-sqlbench-"))
    postgres = Postgres(folder).start()
    try:
        with psycopg.connect(
            postgres.url().replace("postgresql+psycopg", "postgresql"), autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE bench")
        bench = Bench(postgres, "bench")
        with psycopg.connect(bench.dsn) as conn:
            conn.execute(SCHEMA.format(rows=EXPORT_ROWS))
        assert bench.export_gateway() == bench.export_psycopg() == EXPORT_ROWS  # and warm both
        bench.import_gateway()
        bench.update_gateway()
        bench.truncate()
        times: dict[str, list[tuple[float, float]]] = {
            k: [] for k in ("imp_pg", "imp_gw", "upd_pg", "upd_gw", "exp_pg", "exp_gw")
        }
        for _ in range(args.rounds):
            for name, fn in (
                ("imp_pg", bench.import_psycopg),
                ("imp_gw", bench.import_gateway),  # the imported rows stay for the updates
                ("upd_pg", bench.update_psycopg),
                ("upd_gw", bench.update_gateway),
                ("exp_pg", bench.export_psycopg),
                ("exp_gw", bench.export_gateway),
            ):
                if name == "imp_gw":
                    bench.truncate()
                times[name].append(timed(bench, fn))
            bench.truncate()
        report(times, args.rounds)
        if args.profile:
            from pyinstrument import Profiler

            # The gateway runs a call in a thread of its own (in-process), out of a
            # profiler's sight: the hook and the serialiser are profiled here directly.
            from gateway.serialize import dumps
            from wrapgate_sql import schemas

            unencrypted = schemas.Unencrypted().load(bench.connection["unencrypted"])
            conf = schemas.ExportConfiguration().load({"table": "exports", "key": "id", "pageSize": PAGE})
            profiler = Profiler(interval=0.0002)
            profiler.start()
            for _ in range(3):
                state = None
                while True:
                    page = connector.wrapgate_export(
                        unencrypted, bench.connection["encrypted"], conf, None, None, None, None, state, None
                    )
                    dumps(page)
                    if page["lastPage"]:
                        break
                    state = page["state"]
            iconf = schemas.ImportConfiguration().load({"table": "imports"})
            for _ in range(3):
                connector.wrapgate_import(
                    unencrypted, bench.connection["encrypted"], iconf, bench.records, None
                )
                bench.truncate()
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
    finally:
        connector.ENGINES.clear()
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


def report(times: dict[str, list[tuple[float, float]]], rounds: int) -> None:
    def ms(name: str, which: int) -> tuple[float, float, float]:
        values = [t[which] * 1000 for t in times[name]]
        return statistics.median(values), min(values), max(values)

    print(f"{rounds} rounds; milliseconds: median (min-max)")
    for label, a, b, target in (
        (f"import {IMPORT_ROWS} records", "imp_gw", "imp_pg", 2.0),
        (f"update {IMPORT_ROWS} records", "upd_gw", "upd_pg", 2.0),
        (f"export {EXPORT_ROWS} rows", "exp_gw", "exp_pg", 1.5),
    ):
        for which, kind in ((0, "wall"), (1, "cpu")):
            gw, pg = ms(a, which), ms(b, which)
            ratios = [x[which] / y[which] for x, y in zip(times[a], times[b], strict=True)]
            print(
                f"{label:24} {kind:4}  gateway {gw[0]:7.1f} ({gw[1]:.1f}-{gw[2]:.1f})  "
                f"psycopg {pg[0]:7.1f} ({pg[1]:.1f}-{pg[2]:.1f})  ratio {gw[0] / pg[0]:.2f} "
                f"(per round {min(ratios):.2f}-{max(ratios):.2f}; target <= {target})"
            )


if __name__ == "__main__":
    main()
