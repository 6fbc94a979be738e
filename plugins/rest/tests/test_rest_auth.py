"""OAuth 2.0 grants (the test API is the token endpoint) and header templates (issue 11)."""

import json

from api import API_KEY, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN
from options import conn


def oauth(api, grant="client_credentials", secrets=None, **auth):
    return conn(
        api,
        {"type": "oauth2", "grant": grant, "tokenURL": f"{api.url}/oauth/token", **auth},
        secrets or {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET},
    )


def test_client_credentials_token_is_cached_and_renewed_on_401(call, api):
    options = {
        "connection": oauth(api),
        "configuration": {"path": "/items-offset", "query": {"offset": 0, "limit": 3}},
    }
    answers = [call("rest.export", options) for _ in range(2)]
    assert [len(body["data"]) for _, body in answers] == [3, 3]
    assert api.state["token_requests"] == ["client_credentials"]  # one token for both calls
    api.state["tokens"].clear()  # the API forgets the token before it expires
    status, body = call("rest.export", options)
    assert status == 200 and len(body["data"]) == 3
    assert api.state["token_requests"] == ["client_credentials"] * 2
    assert "oauth-" not in json.dumps([*answers, (status, body)])


def test_refresh_token_grant_with_the_secret_in_the_body(call, api):
    c = oauth(
        api,
        "refresh_token",
        {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "refreshToken": REFRESH_TOKEN},
        clientAuth="client_secret_post",
    )
    assert call("rest.ping", {"connection": c}) == (200, {"statusCode": 200})
    assert api.state["token_requests"] == ["refresh_token"]


def test_a_refused_client_takes_the_connection_offline_without_its_secret(call, api):
    c = oauth(api, secrets={"clientId": CLIENT_ID, "clientSecret": "wrong-Secret-999"})
    status, body = call("rest.ping", {"connection": c})
    assert body == {
        "statusCode": 401,
        "errors": [{"code": "unauthorized", "message": "the token endpoint refused: invalid_client"}],
    }
    status, page = call("rest.export", {"connection": c, "configuration": {"path": "/me"}})
    assert page["connectionOffline"] is True and "wrong-Secret" not in json.dumps(page)


def test_header_template_fills_a_secret(call, api):
    c = conn(
        api,
        {"type": "none"},
        {"apiKey": API_KEY},
        headers={"Authorization": "Token token={{encrypted.apiKey}}"},
    )
    assert call("rest.ping", {"connection": c}) == (200, {"statusCode": 200})
    c["encrypted"]["apiKey"] = "wrong"
    assert call("rest.ping", {"connection": c})[1]["statusCode"] == 401
