"""The rest connector through a real gunicorn (gevent workers), over HTTP."""

from api import TOKEN

from gateway.testing import GatewayProcess


def test_cursor_export_and_import_over_http(api, tmp_path):
    connection = {
        "_id": "r",
        "unencrypted": {"baseURI": api.url, "auth": {"type": "bearer"}},
        "encrypted": {"token": TOKEN},
    }
    with GatewayProcess(tmp_path, env={"WRAPGATE_PLUGINS": "rest"}) as gateway:
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
