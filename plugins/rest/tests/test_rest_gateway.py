"""The rest connector through a real gunicorn (gevent workers), over HTTP."""

from api import TOKEN
from options import Gunicorn


def test_cursor_export_and_import_over_http(api, tmp_path):
    connection = {
        "_id": "r",
        "unencrypted": {"baseURI": api.url, "auth": {"type": "bearer"}},
        "encrypted": {"token": TOKEN},
    }
    with Gunicorn(tmp_path, env={"WRAPGATE_PLUGINS": "rest"}) as gateway:
        ids, state = [], None
        while True:
            page = gateway.call(
                "rest.export",
                {
                    "connection": connection,
                    "state": state,
                    "configuration": {
                        "path": "/items-cursor",
                        "recordsPath": "results",
                        "pagination": {"type": "cursor", "cursorPath": "meta.next"},
                    },
                },
            ).json()
            ids += [r["id"] for r in page["data"]]
            if page["lastPage"]:
                break
            state = page["state"]
        assert ids == list(range(1, 24))
        records = [{"name": str(i), "sleep": 0.1} for i in range(8)] + [{"bad": True}]
        results = gateway.call(
            "rest.import",
            {
                "connection": connection,
                "postMapData": records,
                "configuration": {"path": "/items", "idPath": "data.id", "concurrency": 4},
            },
        ).json()
        assert [r["statusCode"] for r in results] == [200] * 8 + [422]
        # Concurrency within the page ran on gevent greenlets in the worker.
        assert api.state["max_in_flight"] == 4
        assert TOKEN not in gateway.log()


def test_no_secret_reaches_the_log_even_at_debug(api, tmp_path):
    """urllib3 logs every URL at DEBUG, an API key in the query with it; import
    records go out from worker threads, which must carry the call's scrubber."""
    from api import API_KEY, CLIENT_ID, CLIENT_SECRET

    keyed = {
        "_id": "k",
        "unencrypted": {"baseURI": api.url, "auth": {"type": "apiKey", "queryParam": "key"}},
        "encrypted": {"apiKey": API_KEY},
    }
    oauth = {
        "_id": "o",
        "unencrypted": {"baseURI": api.url, "auth": {"type": "oauth2", "tokenURL": f"{api.url}/oauth/token"}},
        "encrypted": {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET},
    }
    env = {"WRAPGATE_PLUGINS": "rest", "WRAPGATE_LOG_LEVEL": "DEBUG"}
    with Gunicorn(tmp_path, env=env) as gateway:
        for connection in (keyed, oauth):
            results = gateway.call(
                "rest.import",
                {
                    "connection": connection,
                    "postMapData": [{"name": "a"}, {"name": "b"}],
                    "configuration": {"path": "/items", "idPath": "data.id"},
                },
            ).json()
            assert [r["statusCode"] for r in results] == [200, 200]
        log = gateway.log()
    assert "/items" in log  # the requests were logged...
    assert API_KEY not in log and CLIENT_SECRET not in log  # ...without their secrets
    issued = [token for token in api.state["tokens"]]
    assert issued and not any(token in log for token in issued)
