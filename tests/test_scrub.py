"""Secret masking, unit by unit: which values are secrets, the forms they take in
text, structures, bounds and cost."""

import base64
import json
import time
import urllib.parse

import pytest

from gateway.parsed import Connection
from gateway.scrub import (
    MASK,
    MAX_SECRETS,
    NOTHING,
    RECENT,
    Scrubber,
    TooManySecrets,
    call_secrets,
    scrub_result,
    scrubber_for,
)

SECRET = 'p@ss/wörd"x+1'


def secrets_of(options):
    """The secrets of a call with these ``options``, parsed as the gateway parses them."""
    return call_secrets(Connection.parse(options.get("connection")), options.get("bearerToken"))


def scrubber_of(options):
    return scrubber_for(Connection.parse(options.get("connection")), options.get("bearerToken"))


def test_secrets_are_strings_of_masking_length_from_both_places_a_connection_keeps_them():
    options = {
        "bearerToken": "one-time-token",
        "connection": {
            "encrypted": {"password": "Secret-Pw1", "nested": {"key": "Nested-Key9"}, "region": "eu", "n": 2},
            "wrapper": {"encrypted": {"apiKey": "k-from-wrapper", "flag": "true"}},
            "unencrypted": {"host": "not-a-secret"},
        },
    }
    assert sorted(secrets_of(options)) == sorted(
        ["Secret-Pw1", "Nested-Key9", "k-from-wrapper", "one-time-token"]
    )


def test_masks_raw_url_encoded_and_json_escaped_forms():
    scrub = Scrubber([SECRET]).scrub
    assert scrub(f"raw {SECRET} here") == f"raw {MASK} here"
    assert (
        scrub(f"postgresql://u:{urllib.parse.quote(SECRET, safe='')}@db/x") == f"postgresql://u:{MASK}@db/x"
    )
    assert scrub(f"q={urllib.parse.quote_plus(SECRET)}&x=1") == f"q={MASK}&x=1"
    assert SECRET not in scrub(json.dumps({"password": SECRET}))
    assert scrub(json.dumps({"password": SECRET})) == f'{{"password": "{MASK}"}}'
    assert scrub(json.dumps({"password": SECRET}, ensure_ascii=False)) == f'{{"password": "{MASK}"}}'


@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"user:"])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_masks_base64_at_any_offset(prefix, encode):
    """As in ``Authorization: Basic base64(user:password)``: whatever precedes the
    secret, the characters that carry only its bits are masked."""
    secret = "Sup3r/Secret?>>"
    text = encode(prefix + secret.encode() + b"@tail").decode()
    masked = Scrubber([secret]).scrub(text)
    assert MASK in masked
    # What is left cannot be decoded back into the secret or a 6-character piece of it.
    left = masked.replace(MASK, "")
    for start in range(len(secret) - 5):
        assert encode(secret[start : start + 6].encode()).decode()[:6] not in left


def test_short_values_and_numbers_are_not_secrets_so_messages_stay_readable():
    scrubber = scrubber_of(
        {"connection": {"encrypted": {"region": "eu", "ssl": "true", "port": 2, "password": "Long-Secret-1"}}}
    )
    message = "record 2 of 12 failed in eu-west: ssl is true"
    assert scrubber.scrub(message) == message
    assert scrubber.scrub("Long-Secret-1 refused") == f"{MASK} refused"


def test_longest_secret_wins():
    assert Scrubber(["secret-one", "secret-one-and-more"]).scrub("x secret-one-and-more y") == f"x {MASK} y"


def test_nothing_to_mask_is_falsy_and_leaves_text_alone():
    scrubber = Scrubber([])
    assert not scrubber and scrubber.scrub("text") == "text"


def test_scrub_value_masks_every_string_keys_and_numbers():
    scrubber = Scrubber(["Hidden-77", "123456789"])
    value = {"Hidden-77": ["a Hidden-77", {"n": 123456789, "ok": 5, "b": True}], "t": ("Hidden-77",)}
    assert scrubber.scrub_value(value) == {MASK: [f"a {MASK}", {"n": MASK, "ok": 5, "b": True}], "t": [MASK]}


def test_scrub_errors_masks_any_shape_in_place():
    errors = [
        {"code": "x", "message": "token tok-123456 expired", "field": "tok-123456"},
        {"code": "y", "message": ["list", "of tok-123456"], "errors": [{"source": "tok-123456"}]},
        "plain tok-123456",
    ]
    same = Scrubber(["tok-123456"]).scrub_errors(errors)
    assert same is errors and "tok-123456" not in json.dumps(errors)
    assert errors[0] == {"code": "x", "message": f"token {MASK} expired", "field": MASK}
    assert Scrubber(["tok-123456"]).scrub_errors("errors tok-123456") == f"errors {MASK}"


def test_results_mask_error_structures_and_leave_the_plugins_data_alone():
    scrubber = Scrubber(["Planted-Secret"])
    export = {
        "data": [{"note": "Planted-Secret"}],
        "state": "Planted-Secret",
        "lastPage": True,
        "errors": [{"code": "c", "message": "m", "source": "Planted-Secret"}],
    }
    scrubbed = scrub_result("export", export, scrubber)
    assert scrubbed["data"] == [{"note": "Planted-Secret"}] and scrubbed["state"] == "Planted-Secret"
    assert scrubbed["errors"][0]["source"] == MASK
    imported = [
        {"statusCode": 200, "id": "Planted-Secret"},
        {"statusCode": 200, "id": "ok-1", "errors": "partly Planted-Secret"},
        {"statusCode": 422, "id": "Planted-Secret", "errors": [{"field": "Planted-Secret"}]},
    ]
    assert scrub_result("import", imported, scrubber) == [
        {"statusCode": 200, "id": "Planted-Secret"},
        {"statusCode": 200, "id": "ok-1", "errors": f"partly {MASK}"},
        {"statusCode": 422, "id": MASK, "errors": [{"field": MASK}]},
    ]
    ping = {"statusCode": 401, "errors": [{"code": "Planted-Secret", "message": ["Planted-Secret"]}]}
    assert "Planted-Secret" not in json.dumps(scrub_result("ping", ping, scrubber))


def test_a_calls_scrubber_is_reused_for_the_same_secrets():
    options = {"connection": {"encrypted": {"password": "Reused-Secret-1"}}}
    assert scrubber_of(options) is scrubber_of({"connection": {"encrypted": {"password": "Reused-Secret-1"}}})
    assert scrubber_of(options).scrub("x Reused-Secret-1") == f"x {MASK}"
    assert scrubber_of({"connection": {}}) is NOTHING


def test_recent_secrets_and_tokens_are_masked_outside_any_call():
    scrubber_of({"connection": {"encrypted": {"password": "Recent-Call-Secret"}}})
    RECENT.remember(["System-Token-Remembered"])
    text = "Recent-Call-Secret System-Token-Remembered"
    for scrubber in RECENT.outside():
        text = scrubber.scrub(text)
    assert text == f"{MASK} {MASK}"


def test_output_outside_calls_is_masked_across_rebuilds():
    """Many new connections: every one of the recent ones stays masked, whether its
    secrets are in the rebuilt scrubber or among those built since."""
    secrets = [f"Rebuild-Secret-{i:04d}" for i in range(100)]
    for secret in secrets:
        scrubber_of({"connection": {"encrypted": {"password": secret}}})
    scrubbers = RECENT.outside()
    assert len(scrubbers) <= 1 + 16
    for secret in secrets:
        text = f"x {secret} y"
        for scrubber in scrubbers:
            text = scrubber.scrub(text)
        assert text == f"x {MASK} y"


def test_too_many_or_too_large_secrets_are_refused_before_any_costly_work():
    many = {f"k{i}": f"secret-value-{i:06d}" for i in range(100_000)}
    started = time.perf_counter()
    with pytest.raises(TooManySecrets) as caught:
        scrubber_of({"connection": {"encrypted": many}})
    assert time.perf_counter() - started < 2  # generous: the walk stops at the bound
    assert caught.value.status == 422 and "secret-value" not in caught.value.message
    with pytest.raises(TooManySecrets):
        scrubber_of({"connection": {"encrypted": {"key": "x" * (64 * 1024 + 1)}}})
    # At the bound, it serves.
    at_bound = {f"k{i}": f"bound-secret-{i:06d}" for i in range(MAX_SECRETS)}
    assert scrubber_of({"connection": {"encrypted": at_bound}}).scrub("bound-secret-000007") == MASK


def test_deep_nesting_does_not_overflow():
    nested: dict = {"password": "Deep-Secret-1"}
    for _ in range(5000):
        nested = {"n": nested}
    assert secrets_of({"connection": {"encrypted": nested}}) == ["Deep-Secret-1"]


def test_results_of_hooks_mask_their_errors_only():
    scrubber = Scrubber(["Hook-Secret-1"])
    page = {"data": [{"note": "Hook-Secret-1"}], "errors": [{"code": "x", "message": "Hook-Secret-1"}]}
    scrubbed = scrub_result("preSavePage", page, scrubber)
    assert scrubbed["errors"] == [{"code": "x", "message": MASK}]
    assert scrubbed["data"] == [{"note": "Hook-Secret-1"}]  # the plugin's data
    mapped = [{"data": {"a": "Hook-Secret-1"}, "errors": [{"code": "x", "message": "Hook-Secret-1"}]}]
    assert scrub_result("preMap", mapped, scrubber) == [
        {"data": {"a": "Hook-Secret-1"}, "errors": [{"code": "x", "message": MASK}]}
    ]
    assert scrub_result("installer", {"message": "Hook-Secret-1"}, scrubber) == {"message": "Hook-Secret-1"}
