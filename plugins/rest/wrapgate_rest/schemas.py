"""What a ``rest`` connection and its exports and imports are configured with."""

from __future__ import annotations

import re
import urllib.parse

import jmespath
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

PATH = validate.Regexp(r"^/", error="must start with /")
ACTIONS = ("success", "fail", "retry", "ignore", "offline")
#: A status rule's key: one status (``404``) or a class (``5xx``).
STATUS_KEY = re.compile(r"^[1-5]([0-9]{2}|xx)$")
#: ``{{encrypted.apiKey}}`` in a header value: filled from the encrypted section at request time.
TEMPLATE = re.compile(r"\{\{\s*encrypted\.(\w+)\s*\}\}")


def _http_url(value: str) -> None:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError("must be an http(s) URL")
    if parts.username or parts.password:
        raise ValidationError("must not hold credentials: put them in the encrypted section")


def _jmespath(value: str | None) -> None:
    if value is None:
        return
    try:
        jmespath.compile(value)
    except jmespath.exceptions.JMESPathError as exc:
        raise ValidationError(f"is not a JMESPath expression: {str(exc).splitlines()[0]}") from None


def JMESPath(**kwargs) -> fields.String:
    """A string field holding a JMESPath expression, checked when the configuration loads."""
    return fields.String(validate=_jmespath, **kwargs)


class StatusRules(fields.Dict):
    """``{"404": "ignore", "5xx": "retry"}``: what an answer's status means."""

    def __init__(self, **kwargs):
        super().__init__(
            keys=fields.String(
                validate=validate.Regexp(STATUS_KEY, error="must be a status like 404 or 5xx")
            ),
            values=fields.String(validate=validate.OneOf(ACTIONS)),
            load_default=dict,
            **kwargs,
        )


class Auth(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(
        load_default="none",
        validate=validate.OneOf(["none", "bearer", "basic", "apiKey", "oauth2"]),
    )
    username = fields.String(load_default=None, metadata={"description": "basic auth user"})
    headerName = fields.String(
        load_default="X-API-Key", metadata={"description": "apiKey: header to send it in"}
    )
    queryParam = fields.String(load_default=None, metadata={"description": "apiKey: query parameter instead"})
    grant = fields.String(
        load_default="client_credentials",
        validate=validate.OneOf(["client_credentials", "refresh_token"]),
        metadata={"description": "oauth2: how the access token is got"},
    )
    tokenURL = fields.String(load_default=None, validate=_http_url, metadata={"description": "oauth2"})
    scope = fields.String(load_default=None, metadata={"description": "oauth2: space-separated scopes"})
    clientAuth = fields.String(
        load_default="client_secret_basic",
        validate=validate.OneOf(["client_secret_basic", "client_secret_post"]),
        metadata={"description": "oauth2: how the client authenticates to the token endpoint"},
    )
    forbiddenIsAuth = fields.Boolean(
        load_default=False,
        metadata={"description": "a 403 means refused credentials (offline), not one error"},
    )

    @validates_schema
    def _oauth2(self, data, **_):
        if data["type"] == "oauth2" and not data["tokenURL"]:
            raise ValidationError("oauth2 needs tokenURL", "tokenURL")


class Unencrypted(Schema):
    class Meta:
        unknown = RAISE

    baseURI = fields.String(required=True, metadata={"description": "https://api.example.com/v2"})
    pingPath = fields.String(load_default="/", validate=PATH)
    auth = fields.Nested(Auth, load_default=lambda: Auth().load({}))
    headers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        load_default=dict,
        metadata={"description": "sent with every request; {{encrypted.<field>}} is filled in"},
    )
    timeout = fields.Float(load_default=30.0, validate=validate.Range(0.1, 300))
    connectTimeout = fields.Float(load_default=5.0, validate=validate.Range(0.1, 60))
    retries = fields.Integer(load_default=3, validate=validate.Range(0, 10))
    backoff = fields.Float(
        load_default=0.5,
        validate=validate.Range(0, 30),
        metadata={"description": "seconds; doubles with each retry"},
    )
    rateLimitWait = fields.Float(
        load_default=30.0,
        validate=validate.Range(0, 300),
        metadata={"description": "seconds a call waits out 429s before answering 429 itself"},
    )
    statusRules = StatusRules(metadata={"description": "per-status outcome for every request"})
    verifyTLS = fields.Boolean(load_default=True)

    @validates("baseURI")
    def _uri(self, value, **_):
        _http_url(value)


class Encrypted(Schema):
    class Meta:
        unknown = RAISE

    token = fields.String(load_default=None, metadata={"description": "bearer token"})
    password = fields.String(load_default=None, metadata={"description": "basic auth password"})
    apiKey = fields.String(load_default=None)
    clientId = fields.String(load_default=None, metadata={"description": "oauth2 client id"})
    clientSecret = fields.String(load_default=None, metadata={"description": "oauth2 client secret"})
    refreshToken = fields.String(load_default=None, metadata={"description": "oauth2 refresh_token grant"})


class Pagination(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(
        load_default="none",
        validate=validate.OneOf(["none", "page", "offset", "cursor", "link", "nextUrl"]),
    )
    pageSize = fields.Integer(load_default=100, validate=validate.Range(1, 10000))
    pageParam = fields.String(load_default="page")
    startPage = fields.Integer(load_default=1)
    sizeParam = fields.String(load_default="per_page", metadata={"description": "page: page size parameter"})
    offsetParam = fields.String(load_default="offset")
    limitParam = fields.String(load_default="limit")
    cursorPath = JMESPath(
        load_default=None, metadata={"description": "JMESPath of the next cursor in the body"}
    )
    cursorHeader = fields.String(
        load_default=None, metadata={"description": "response header with the cursor"}
    )
    cursorParam = fields.String(load_default="cursor")
    nextUrlPath = JMESPath(
        load_default=None, metadata={"description": "nextUrl: JMESPath of the next page's URL in the body"}
    )
    totalPath = JMESPath(load_default=None, metadata={"description": "JMESPath of the total record count"})
    stopPath = JMESPath(load_default=None, metadata={"description": "JMESPath that is true on the last page"})
    location = fields.String(
        load_default="query",
        validate=validate.OneOf(["query", "body"]),
        metadata={"description": "where page, offset or cursor go; body: dotted path into the request body"},
    )


class Delta(Schema):
    class Meta:
        unknown = RAISE

    param = fields.String(required=True, metadata={"description": "query parameter for 'changed since'"})
    format = fields.String(load_default="iso", validate=validate.OneOf(["iso", "epoch_ms", "epoch_s"]))


class Once(Schema):
    class Meta:
        unknown = RAISE

    query = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        load_default=dict,
        metadata={"description": "query parameters that select records not yet exported"},
    )
    method = fields.String(load_default="PATCH", validate=validate.OneOf(["POST", "PUT", "PATCH"]))
    path = fields.String(
        required=True, validate=PATH, metadata={"description": "/items/{id}: marks one record exported"}
    )
    body = fields.Raw(load_default=None, metadata={"description": "default {<once.booleanField>: true}"})

    @validates("path")
    def _id(self, value, **_):
        if "{id}" not in value:
            raise ValidationError("needs {id}")


class ExportConfiguration(Schema):
    class Meta:
        unknown = RAISE

    method = fields.String(load_default="GET", validate=validate.OneOf(["GET", "POST"]))
    path = fields.String(required=True, validate=PATH)
    body = fields.Raw(load_default=None, metadata={"description": "POST: the request body"})
    recordsPath = JMESPath(load_default="@", metadata={"description": "JMESPath of the records in the body"})
    recordFilter = JMESPath(
        load_default=None, metadata={"description": "JMESPath on each record; falsy ones are left out"}
    )
    idField = fields.String(load_default="id", metadata={"description": "record field holding its id"})
    query = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=dict)
    pagination = fields.Nested(Pagination, load_default=lambda: Pagination().load({}))
    delta = fields.Nested(Delta, load_default=None)
    once = fields.Nested(Once, load_default=None)
    statusRules = StatusRules()

    @validates_schema
    def _paging(self, data, **_):
        paging = data["pagination"]
        if paging["type"] == "cursor" and not (paging["cursorPath"] or paging["cursorHeader"]):
            raise ValidationError("cursor pagination needs cursorPath or cursorHeader", "pagination")
        if paging["type"] == "nextUrl" and not paging["nextUrlPath"]:
            raise ValidationError("nextUrl pagination needs nextUrlPath", "pagination")
        if paging["location"] == "body" and data["method"] != "POST":
            raise ValidationError("paging in the body needs method POST", "pagination")
        if data["once"] and paging["type"] == "page":
            raise ValidationError(
                "once cannot page by number (marked records leave the filter); use offset or cursor",
                "once",
            )


class ImportConfiguration(Schema):
    class Meta:
        unknown = RAISE

    method = fields.String(load_default="POST", validate=validate.OneOf(["POST", "PUT", "PATCH"]))
    path = fields.String(
        required=True, validate=PATH, metadata={"description": "/items, or /items/{id} for PUT and PATCH"}
    )
    idField = fields.String(load_default="id", metadata={"description": "record field that fills {id}"})
    idPath = JMESPath(load_default="id", metadata={"description": "JMESPath of the id in the response"})
    concurrency = fields.Integer(load_default=4, validate=validate.Range(1, 25))
    order = fields.String(
        load_default="key",
        validate=validate.OneOf(["key", "batch", "none"]),
        metadata={"description": "key: records of one key go out in order; batch: all in order"},
    )
    orderKey = fields.String(load_default=None, metadata={"description": "record field of the key; idField"})
    batchSize = fields.Integer(load_default=1, validate=validate.Range(1, 1000))
    batchBodyPath = fields.String(
        load_default=None,
        metadata={"description": "batch: the records go under this key, else the body is the array"},
    )
    resultsPath = JMESPath(
        load_default="@", metadata={"description": "batch: JMESPath of the per-record results, in order"}
    )
    resultErrorPath = JMESPath(
        load_default=None, metadata={"description": "batch: JMESPath of a result's error; set means failed"}
    )
    statusRules = StatusRules()

    @validates_schema
    def _template(self, data, **_):
        if data["method"] in ("PUT", "PATCH") and "{id}" not in data["path"] and data["batchSize"] == 1:
            raise ValidationError("PUT and PATCH need {id} in the path", "path")
        if data["batchSize"] > 1 and "{id}" in data["path"]:
            raise ValidationError("a batch goes to one path: no {id}", "path")
