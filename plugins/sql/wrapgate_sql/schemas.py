"""What a ``sql`` connection and its exports and imports are configured with."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

IDENTIFIER = validate.Length(min=1, max=128)


class Unencrypted(Schema):
    """Either ``url`` (without a password) or its parts."""

    class Meta:
        unknown = RAISE

    url = fields.String(
        metadata={
            "description": "SQLAlchemy URL without password, e.g. "
            "postgresql+psycopg://app@db:5432/shop or sqlite:///var/demo.sqlite"
        }
    )
    dialect = fields.String(metadata={"description": "postgresql, sqlite, mysql..."})
    driver = fields.String(metadata={"description": "DBAPI driver, e.g. psycopg"})
    host = fields.String()
    port = fields.Integer(validate=validate.Range(1, 65535))
    database = fields.String()
    user = fields.String()
    options = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        metadata={"description": 'URL query options, e.g. {"sslmode": "require"}'},
    )
    connectTimeout = fields.Integer(
        load_default=5,
        validate=validate.Range(1, 120),
        metadata={"description": "seconds to wait for a connection"},
    )
    poolSize = fields.Integer(load_default=5, validate=validate.Range(1, 25))

    @validates_schema
    def _one_way(self, data, **_):
        if "url" in data:
            if "dialect" in data:
                raise ValidationError("give url or dialect (with host, port...), not both", "url")
            try:
                url = make_url(data["url"])
            except ArgumentError as exc:
                raise ValidationError(f"not a database URL: {exc}", "url") from None
            if url.password:
                raise ValidationError(
                    "the URL holds a password: put it in the encrypted section (encrypted.password)", "url"
                )
        elif "dialect" not in data:
            raise ValidationError("give url, or dialect with host, port, database and user", "dialect")


class Encrypted(Schema):
    class Meta:
        unknown = RAISE

    password = fields.String(load_default=None)


class ExportConfiguration(Schema):
    class Meta:
        unknown = RAISE

    table = fields.String(validate=IDENTIFIER)
    schema = fields.String(validate=IDENTIFIER, load_default=None)
    query = fields.String(
        validate=validate.Length(min=1), metadata={"description": "a read-only SELECT, instead of table"}
    )
    key = fields.String(
        required=True,
        validate=IDENTIFIER,
        metadata={
            "description": "sortable column pages follow (keyset); with a table, ties and NULLs "
            "are paged by the primary key; a query's key must be unique and NOT NULL"
        },
    )
    columns = fields.List(fields.String(validate=IDENTIFIER), load_default=None)
    pageSize = fields.Integer(load_default=1000, validate=validate.Range(1, 100000))
    deltaLagSeconds = fields.Float(
        load_default=60.0,
        validate=validate.Range(0, 86400),
        metadata={
            "description": "delta: rows newer than this many seconds wait for the next run, and each run "
            "looks back as far, so rows committed late by a long transaction are still exported"
        },
    )

    @validates_schema
    def _source(self, data, **_):
        # The query itself is checked by a SQL parser in the database's dialect (queries.py).
        if ("table" in data) == ("query" in data):
            raise ValidationError("give exactly one of table or query", "table")


class ImportConfiguration(Schema):
    class Meta:
        unknown = RAISE

    table = fields.String(required=True, validate=IDENTIFIER)
    schema = fields.String(validate=IDENTIFIER, load_default=None)
    operation = fields.String(load_default="insert", validate=validate.OneOf(["insert", "update", "upsert"]))
    keys = fields.List(
        fields.String(validate=IDENTIFIER),
        load_default=None,
        metadata={
            "description": "columns that find the row (update, upsert, ignoreExisting); "
            "default: the primary key"
        },
    )
    idColumn = fields.String(
        validate=IDENTIFIER,
        load_default=None,
        metadata={"description": "column returned as each record's id; default: first key"},
    )
    ignoreExisting = fields.Boolean(
        load_default=False, metadata={"description": "insert: skip rows that exist"}
    )
    ignoreMissing = fields.Boolean(
        load_default=False, metadata={"description": "update: skip rows that do not"}
    )
    ignoreUnknownFields = fields.Boolean(load_default=False)
