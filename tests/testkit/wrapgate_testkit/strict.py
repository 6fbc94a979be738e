"""Connector ``strict``: declares schemas for its sections and configuration."""

from marshmallow import Schema, fields, validate

from gateway import hookimpl


class Unencrypted(Schema):
    host = fields.String(required=True)
    port = fields.Integer(load_default=5432, validate=validate.Range(1, 65535))


class Encrypted(Schema):
    password = fields.String(required=True, validate=validate.Length(min=8))


class Configuration(Schema):
    table = fields.String(required=True)
    pageSize = fields.Integer(load_default=100, validate=validate.Range(1, 10000))


@hookimpl
def wrapgate_connection_schemas():
    return {"unencrypted": Unencrypted(), "encrypted": Encrypted()}


@hookimpl
def wrapgate_configuration_schema(function):
    return Configuration()


@hookimpl
def wrapgate_ping(unencrypted, encrypted):
    # Proves the loaded (typed, defaulted) sections arrive, not the raw dicts.
    return {"statusCode": 200, "port": unencrypted["port"], "host": unencrypted["host"]}


@hookimpl
def wrapgate_export(configuration):
    return {"data": [configuration], "lastPage": True}
