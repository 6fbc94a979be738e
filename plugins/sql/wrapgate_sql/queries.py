"""An export's ``query``: exactly one read-only statement, read by a real SQL parser.

sqlglot parses the text in the database's dialect, so a ``;`` inside a string
literal or a comment is just text, while a second statement is refused. The
statement must be a query (``SELECT``, ``WITH ... SELECT``, ``UNION``...); it
still runs in a read-only transaction, which stops what a parser cannot see
(a function that writes, a data-modifying ``WITH``).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

# SQLAlchemy dialect name -> sqlglot dialect name; others parse as generic SQL.
DIALECTS = {
    "postgresql": "postgres",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "tsql",
    "oracle": "oracle",
}


class QueryRefused(ValueError):
    code = "invalid_configuration"


def checked(query: str, dialect: str) -> str:
    """``query`` ready to nest as a subquery (trailing ``;`` dropped), or QueryRefused."""
    try:
        statements = [s for s in sqlglot.parse(query, read=DIALECTS.get(dialect)) if s is not None]
    except SqlglotError as exc:
        reason = " ".join(str(exc).split())[:300]
        raise QueryRefused(f"query: not one SQL statement this connector can read ({reason})") from None
    if len(statements) != 1:
        raise QueryRefused(f"query: must be exactly one statement, found {len(statements)}")
    if not isinstance(statements[0], exp.Query):
        raise QueryRefused(f"query: must be a SELECT, found {statements[0].key.upper()}")
    text = query.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text
