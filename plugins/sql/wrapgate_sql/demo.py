"""Create the SQLite demo database that `scripts/serve` serves: a `customers` table.

python -m wrapgate_sql.demo var/demo.sqlite
"""

from __future__ import annotations

import datetime
import random
import sys
from pathlib import Path

import sqlalchemy as sa

CITIES = ["Springfield", "Riverside", "Fairview", "Madison", "Georgetown"]


def create(path: str, rows: int = 250) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{path}")
    populate(engine, rows)
    engine.dispose()


def populate(engine: sa.Engine, rows: int = 250) -> None:
    """The demo's ``customers`` table, made anew in any database SQLAlchemy speaks."""
    meta = sa.MetaData()
    customers = sa.Table(
        "customers",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(200), unique=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("city", sa.String(100)),
        sa.Column("balance", sa.Numeric(12, 2)),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("exported", sa.Boolean, nullable=False, default=False),
    )
    meta.drop_all(engine)
    meta.create_all(engine)
    rng = random.Random(7)
    start = datetime.datetime(2026, 1, 1)
    with engine.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {
                    "id": i,
                    "email": f"customer{i}@example.com",
                    "name": f"Customer {i}",
                    "city": CITIES[i % len(CITIES)],
                    "balance": round(rng.uniform(0, 5000), 2),
                    "updated_at": start + datetime.timedelta(hours=i),
                    "exported": False,
                }
                for i in range(1, rows + 1)
            ],
        )
    engine.dispose()


if __name__ == "__main__":
    create(sys.argv[1] if len(sys.argv) > 1 else "var/demo.sqlite")
    print(f"demo database ready: {sys.argv[1] if len(sys.argv) > 1 else 'var/demo.sqlite'}")
