"""The example hooks through a real gunicorn: found by their entry point, called over HTTP."""

import pytest

from gateway.testing import GatewayProcess, post

pytestmark = pytest.mark.slow  # a real gunicorn


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with GatewayProcess(tmp_path_factory.mktemp("hooks"), env={"WRAPGATE_PLUGINS": "contacts"}) as server:
        yield server


def hook(gateway, function, options, type_="hook"):
    body = {"diy": True, "type": type_, "function": function, "options": options}
    return post(gateway.url, body, token=gateway.token)


def test_clean_page_normalises_drops_and_reports(gateway):
    page = [
        {"id": 1, "email": "  Ann@Example.COM "},
        {"id": 2, "email": "not an address"},
        {"id": 1, "email": "ann@example.com"},
        {"id": 3},
    ]
    r = hook(gateway, "contacts.cleanPage", {"data": page, "errors": [], "_exportId": "e1"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "data": [{"id": 1, "email": "ann@example.com"}],
        "errors": [
            {"code": "invalid_email", "message": "record 2: no valid e-mail in email"},
            {"code": "duplicate_record", "message": "record 1: already on this page"},
            {"code": "invalid_email", "message": "record 3: no valid e-mail in email"},
        ],
    }


def test_clean_page_keeps_the_exports_own_errors_and_reads_its_settings(gateway):
    earlier = {"code": "timeout", "message": "page 2 retried"}
    options = {"data": [{"id": 7, "mail": "b@x.io"}], "errors": [earlier], "settings": {"emailField": "mail"}}
    r = hook(gateway, "contacts.cleanPage", options)
    assert r.json() == {"data": [{"id": 7, "mail": "b@x.io"}], "errors": [earlier]}


def test_split_names_answers_one_entry_per_record(gateway):
    records = [{"fullName": "Ada King Lovelace", "email": "ada@x.io"}, {"fullName": "No Mail"}]
    r = hook(gateway, "contacts.splitNames", {"preMapData": records, "postMapData": records})
    assert r.status_code == 200, r.text
    assert r.json() == [
        {
            "data": {
                "fullName": "Ada King Lovelace",
                "email": "ada@x.io",
                "firstName": "Ada",
                "lastName": "King Lovelace",
            }
        },
        {"errors": [{"code": "missing_email", "message": "email is required by the target"}]},
    ]


def test_install_defaults_fills_in_the_settings(gateway):
    r = hook(gateway, "contacts.installDefaults", {"settings": {"region": "us"}}, type_="installer")
    assert r.json() == {"success": True, "settings": {"region": "us", "pageSize": 100, "syncDeleted": False}}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"region": "mars"}, "region must be one of eu, us, ap, not 'mars'"),
        ({"pageSize": 0}, "pageSize must be a whole number from 1 to 1000"),
    ],
)
def test_install_defaults_refuses_bad_settings(gateway, settings, message):
    r = hook(gateway, "contacts.installDefaults", {"settings": settings}, type_="installer")
    assert r.status_code == 422
    assert r.json() == {"errors": [{"code": "invalid_settings", "message": message}]}


def test_a_hook_is_not_an_installer_step(gateway):
    r = hook(gateway, "contacts.cleanPage", {"data": []}, type_="installer")
    assert r.json()["errors"][0]["code"] == "invalid_function"
