"""gateway.auth, unit by unit: where the token is taken from, and its check."""

import pytest

from gateway.auth import TokenCheck, presented_token


@pytest.mark.parametrize(
    ("header", "body", "query", "token"),
    [
        ("Bearer abc", {"access_token": "b"}, {"access_token": "q"}, "abc"),
        ("bearer abc", None, {}, "abc"),
        ("Basic abc", {"access_token": "b"}, {"access_token": "q"}, None),  # a header alone decides
        ("Bearer a b", None, {}, None),
        (None, {"access_token": "b"}, {"access_token": "q"}, "b"),
        (None, {"access_token": 5}, {"access_token": "q"}, None),
        (None, {}, {"access_token": "q"}, "q"),
        (None, [], {}, None),
    ],
)
def test_presented_token(header, body, query, token):
    assert presented_token(header, body, query) == token


def test_token_check_accepts_any_configured_token_only():
    check = TokenCheck(["one", "two"])
    assert check("one") and check("two")
    assert not check("three") and not check(None) and not check("")


def test_token_check_needs_a_token():
    with pytest.raises(ValueError):
        TokenCheck([])
