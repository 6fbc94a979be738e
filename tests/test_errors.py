"""gateway.errors: the one shape of every error."""

from gateway.errors import (
    ConnectionOffline,
    CredentialsRefused,
    GatewayError,
    InvalidRequest,
    connection_failed,
    entry_from_exception,
    shape,
)


class Coded(Exception):
    code = "quota"


class Named(Exception):
    name = "my_error"


class WithMessage(Exception):
    def __init__(self):
        super().__init__()
        self.code, self.message = "c", "from the attribute"


def test_entry_code_is_code_then_name_then_class():
    assert entry_from_exception(Coded("m")) == {"code": "quota", "message": "m"}
    assert entry_from_exception(Named("m")) == {"code": "my_error", "message": "m"}
    assert entry_from_exception(ValueError("m")) == {"code": "ValueError", "message": "m"}
    assert entry_from_exception(WithMessage()) == {"code": "c", "message": "from the attribute"}


def test_shape_of_a_gateway_error_and_of_any_exception():
    assert shape(GatewayError("gone", code="terminating", status=503)) == (
        503,
        {"errors": [{"code": "terminating", "message": "gone"}]},
        {},
    )
    assert shape(RuntimeError("x")) == (422, {"errors": [{"code": "RuntimeError", "message": "x"}]}, {})


def test_shape_makes_every_entry_text():
    status, body, _ = shape(InvalidRequest(errors=[{"code": 5, "message": None}, "loose"]))
    assert body == {"errors": [{"code": "5", "message": "None"}, {"code": "error", "message": "loose"}]}


def test_connection_failed_answers_per_kind():
    exc = CredentialsRefused("no")
    entry = {"code": "unauthorized", "message": "no"}
    assert connection_failed("ping", exc, 0) == {"statusCode": 401, "errors": [entry]}
    assert connection_failed("export", ConnectionOffline("down"), 0)["connectionOffline"] is True
    assert connection_failed("import", exc, 2) == [{"statusCode": 401, "errors": [entry]}] * 2
