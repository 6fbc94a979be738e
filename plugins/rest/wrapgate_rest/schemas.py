"""What a ``rest`` connection and its exports and imports are configured with."""

from __future__ import annotations

import urllib.parse

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

PATH = validate.Regexp(r"^/", error="must start with /")


class Auth(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(load_default="none", validate=validate.OneOf(["none", "bearer", "basic", "apiKey"]))
    username = fields.String(load_default=None, metadata={"description": "basic auth user"})
    headerName = fields.String(
        load_default="X-API-Key", metadata={"description": "apiKey: header to send it in"}
    )
    queryParam = fields.String(load_default=None, metadata={"description": "apiKey: query parameter instead"})


class Unencrypted(Schema):
    class Meta:
        unknown = RAISE

    baseURI = fields.String(required=True, metadata={"description": "https://api.example.com/v2"})
    pingPath = fields.String(load_default="/", validate=PATH)
    auth = fields.Nested(Auth, load_default=lambda: Auth().load({}))
    headers = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    timeout = fields.Float(load_default=30.0, validate=validate.Range(0.1, 300))
    connectTimeout = fields.Float(load_default=5.0, validate=validate.Range(0.1, 60))
    retries = fields.Integer(load_default=3, validate=validate.Range(0, 10))
    backoff = fields.Float(
        load_default=0.5,
        validate=validate.Range(0, 30),
        metadata={"description": "seconds; doubles with each retry"},
    )
    verifyTLS = fields.Boolean(load_default=True)

    @validates("baseURI")
    def _uri(self, value, **_):
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationError("must be an http(s) URL")
        if parts.username or parts.password:
            raise ValidationError("must not hold credentials: put them in the encrypted section")


class Encrypted(Schema):
    class Meta:
        unknown = RAISE

    token = fields.String(load_default=None, metadata={"description": "bearer token"})
    password = fields.String(load_default=None, metadata={"description": "basic auth password"})
    apiKey = fields.String(load_default=None)


class Pagination(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(
        load_default="none", validate=validate.OneOf(["none", "page", "offset", "cursor", "link"])
    )
    pageSize = fields.Integer(load_default=100, validate=validate.Range(1, 10000))
    pageParam = fields.String(load_default="page")
    startPage = fields.Integer(load_default=1)
    sizeParam = fields.String(load_default="per_page", metadata={"description": "page: page size parameter"})
    offsetParam = fields.String(load_default="offset")
    limitParam = fields.String(load_default="limit")
    cursorPath = fields.String(
        load_default=None, metadata={"description": "JMESPath of the next cursor in the body"}
    )
    cursorParam = fields.String(load_default="cursor")


class Delta(Schema):
    class Meta:
        unknown = RAISE

    param = fields.String(required=True, metadata={"description": "query parameter for 'changed since'"})
    format = fields.String(load_default="iso", validate=validate.OneOf(["iso", "epoch_ms", "epoch_s"]))


class ExportConfiguration(Schema):
    class Meta:
        unknown = RAISE

    path = fields.String(required=True, validate=PATH)
    recordsPath = fields.String(
        load_default="@", metadata={"description": "JMESPath of the records in the body"}
    )
    query = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
    pagination = fields.Nested(Pagination, load_default=lambda: Pagination().load({}))
    delta = fields.Nested(Delta, load_default=None)

    @validates_schema
    def _cursor(self, data, **_):
        if data["pagination"]["type"] == "cursor" and not data["pagination"]["cursorPath"]:
            raise ValidationError("cursor pagination needs cursorPath", "pagination")


class ImportConfiguration(Schema):
    class Meta:
        unknown = RAISE

    method = fields.String(load_default="POST", validate=validate.OneOf(["POST", "PUT", "PATCH"]))
    path = fields.String(
        required=True, validate=PATH, metadata={"description": "/items, or /items/{id} for PUT and PATCH"}
    )
    idField = fields.String(load_default="id", metadata={"description": "record field that fills {id}"})
    idPath = fields.String(load_default="id", metadata={"description": "JMESPath of the id in the response"})
    concurrency = fields.Integer(load_default=4, validate=validate.Range(1, 25))

    @validates_schema
    def _template(self, data, **_):
        if data["method"] in ("PUT", "PATCH") and "{id}" not in data["path"]:
            raise ValidationError("PUT and PATCH need {id} in the path", "path")
