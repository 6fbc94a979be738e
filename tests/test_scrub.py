"""Secret masking, unit by unit: the forms a secret takes in text."""

from gateway.parsed import Connection
from gateway.scrub import MASK, Scrubber, call_secrets


def test_secrets_come_from_both_places_a_connection_keeps_them():
    options = {
        "bearerToken": "one-time-token",
        "connection": {
            "encrypted": {"password": "p1", "nested": {"key": 12345}},
            "wrapper": {"encrypted": {"apiKey": "k-from-wrapper"}},
            "unencrypted": {"host": "not-a-secret"},
        },
    }
    connection = Connection.parse(options["connection"])
    found = call_secrets(connection.secret_sections, options["bearerToken"])
    assert sorted(found) == sorted(["p1", "12345", "k-from-wrapper", "one-time-token"])


def test_masks_raw_url_encoded_and_json_escaped_forms():
    scrub = Scrubber(['p@ss/word"x']).scrub
    assert scrub('raw p@ss/word"x here') == f"raw {MASK} here"
    assert scrub("postgresql://u:p%40ss%2Fword%22x@db/x") == f"postgresql://u:{MASK}@db/x"
    assert scrub('{"password": "p@ss/word\\"x"}') == f'{{"password": "{MASK}"}}'


def test_short_secrets_are_masked_as_whole_words_only():
    scrub = Scrubber(["ab"]).scrub
    assert scrub("password ab refused") == f"password {MASK} refused"
    assert scrub("tables about abc") == "tables about abc"


def test_longest_secret_wins():
    assert Scrubber(["secret-one", "secret-one-and-more"]).scrub("x secret-one-and-more y") == f"x {MASK} y"


def test_nothing_to_mask_is_falsy_and_leaves_text_alone():
    scrubber = Scrubber([])
    assert not scrubber and scrubber.scrub("text") == "text"


def test_scrub_errors_masks_messages_in_place():
    errors = [{"code": "x", "message": "token tok-123456 expired"}, "not a dict"]
    Scrubber(["tok-123456"]).scrub_errors(errors)
    assert errors[0]["message"] == f"token {MASK} expired"


def test_a_calls_scrubber_is_reused_for_the_same_secrets():
    from gateway.scrub import NOTHING, scrubber_for

    encrypted = {"password": "Reused-Secret-1"}
    assert scrubber_for(encrypted) is scrubber_for({"password": "Reused-Secret-1"})
    assert scrubber_for(encrypted).scrub("x Reused-Secret-1") == f"x {MASK}"
    assert scrubber_for({}) is NOTHING
