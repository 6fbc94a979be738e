"""A real HTTP/JSON API for the rest connector's tests, served on 127.0.0.1 from a thread.

It paginates four ways, authenticates three ways, fails and rate-limits on
demand, and records what it was sent.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
import urllib.parse

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

TOKEN = "api-Token-123"
USER, PASSWORD = "ada", "api-Pass-456"
API_KEY = "api-Key-789"
CLIENT_ID, CLIENT_SECRET = "client-7", "client-Secret-321"
REFRESH_TOKEN = "refresh-Token-654"
RECORDS = [
    {"id": i, "name": f"Item {i}", "updated": f"2026-01-{1 + i % 28:02d}T00:00:00Z"} for i in range(1, 24)
]


def create_api() -> Flask:
    app = Flask("test-api")
    app.state = {
        "calls": [],
        "fail": {},
        "created": [],
        "in_flight": 0,
        "max_in_flight": 0,
        "lock": threading.Lock(),
        "tokens": set(),  # OAuth 2.0 access tokens issued and not revoked
        "token_requests": [],
        "exported": set(),  # ids marked exported (type once)
        "versions": {},  # id -> last value written by PUT
        "cap": 10,  # most records a capped page holds, whatever was asked
        "locked": set(),  # ids whose mark answers 409
    }
    st = app.state
    serial = itertools.count(1)

    def authorised() -> bool:
        header = request.headers.get("Authorization", "")
        if header == f"Bearer {TOKEN}" or header == f"Token token={API_KEY}":
            return True
        if header.startswith("Bearer ") and header[7:] in st["tokens"]:
            return True
        if header.startswith("Basic "):
            return base64.b64decode(header[6:]).decode() == f"{USER}:{PASSWORD}"
        return request.headers.get("X-Api-Key") == API_KEY or request.args.get("key") == API_KEY

    @app.before_request
    def record_and_guard():
        st["calls"].append((request.method, request.full_path))
        if request.path == "/oauth/token":
            return None  # the client authenticates in the token request itself
        if not authorised():
            return jsonify({"error": "invalid credentials"}), 401
        # /fail/<n>/...: the first n requests to that path answer fail-status
        key = request.path
        plan = st["fail"].get(key)
        if plan and plan["times"] > 0:
            plan["times"] -= 1
            headers = (
                {"Retry-After": str(plan.get("retry_after"))} if plan.get("retry_after") is not None else {}
            )
            return jsonify({"message": f"try later ({plan['status']})"}), plan["status"], headers
        return None

    @app.get("/me")
    def me():
        return jsonify({"user": "ada"})

    @app.get("/broken")
    def broken():
        return "database on fire", 500

    @app.get("/items-page")
    def items_page():
        page, size = int(request.args["page"]), int(request.args["per_page"])
        return jsonify({"data": {"items": RECORDS[(page - 1) * size : page * size]}})

    @app.get("/items-capped-page")
    def items_capped_page():
        # Like GitHub or Stripe: per_page above the cap is served as the cap.
        size = min(int(request.args["per_page"]), st["cap"])
        page = int(request.args["page"])
        return jsonify(RECORDS[(page - 1) * size : page * size])

    @app.get("/items-capped-offset")
    def items_capped_offset():
        offset, limit = int(request.args["offset"]), min(int(request.args["limit"]), st["cap"])
        return jsonify({"items": RECORDS[offset : offset + limit], "total": len(RECORDS)})

    @app.get("/items-odata")
    def items_odata():
        # OData / Microsoft Graph: an absolute next link in the body.
        skip = int(request.args.get("$skip", 0))
        body = {"value": RECORDS[skip : skip + 8]}
        if skip + 8 < len(RECORDS):
            body["@odata.nextLink"] = f"{request.host_url}items-odata?$skip={skip + 8}"
        return jsonify(body)

    @app.get("/items-salesforce")
    def items_salesforce():
        # Salesforce: a path in nextRecordsUrl, done: true on the last page.
        start = int(request.args.get("locator", 0))
        chunk = RECORDS[start : start + 9]
        done = start + 9 >= len(RECORDS)
        body = {"totalSize": len(RECORDS), "done": done, "records": chunk}
        if not done:
            body["nextRecordsUrl"] = f"/items-salesforce?locator={start + 9}"
        return jsonify(body)

    @app.get("/items-header-cursor")
    def items_header_cursor():
        start = int(request.args.get("after", 0))
        response = jsonify(RECORDS[start : start + 6])
        if start + 6 < len(RECORDS):
            response.headers["X-Next-Cursor"] = str(start + 6)
        return response

    @app.post("/graphql")
    def graphql():
        # Paging in the POST body: variables.after; hasNextPage says when to stop.
        body = request.get_json()
        assert body["query"].startswith("query Items")
        start = int(body.get("variables", {}).get("after") or 0)
        chunk = RECORDS[start : start + 10]
        more = start + 10 < len(RECORDS)
        info = {"hasNextPage": more, "endCursor": str(start + len(chunk))}
        return jsonify({"data": {"items": {"nodes": chunk, "pageInfo": info}}})

    @app.get("/items-once")
    def items_once():
        offset, limit = int(request.args["offset"]), int(request.args["limit"])
        if request.args.get("exported") != "false":
            return jsonify({"message": "exported=false expected"}), 400
        pending = [r for r in RECORDS if r["id"] not in st["exported"]]
        return jsonify(pending[offset : offset + limit])

    @app.patch("/items-once/<int:item_id>")
    def mark_exported(item_id):
        if item_id in st["locked"]:
            return jsonify({"message": "locked"}), 409
        if request.get_json() != {"exported": True}:
            return jsonify({"message": "bad mark"}), 400
        st["exported"].add(item_id)
        return "", 204

    @app.get("/html-404")
    def html_404():
        page = (
            "<!DOCTYPE html>\n<html><head><title>404</title><style>body{color:red}</style></head>\n"
            "<body><h1>Not Found</h1>\n<p>The page you asked for is not here.</p>\n"
            + "<p>filler</p>\n" * 500
            + "</body></html>"
        )
        return page, 404, {"Content-Type": "text/html; charset=utf-8"}

    @app.get("/forbidden")
    def forbidden():
        return jsonify({"message": "not your tenant"}), 403

    @app.route("/slow", methods=["GET", "POST"])
    def slow():
        time.sleep(float(request.args.get("seconds", 2)))
        if request.method == "POST":
            st["created"].append(request.get_json())
        return jsonify([])

    @app.post("/oauth/token")
    def token():
        form = request.form
        st["token_requests"].append(form.get("grant_type"))
        header = request.headers.get("Authorization", "")
        basic = header.startswith("Basic ") and base64.b64decode(header[6:]).decode() == (
            f"{CLIENT_ID}:{CLIENT_SECRET}"
        )
        posted = form.get("client_id") == CLIENT_ID and form.get("client_secret") == CLIENT_SECRET
        if not (basic or posted):
            return jsonify({"error": "invalid_client"}), 401
        if form.get("grant_type") == "refresh_token" and form.get("refresh_token") != REFRESH_TOKEN:
            return jsonify({"error": "invalid_grant"}), 400
        if form.get("grant_type") not in ("client_credentials", "refresh_token"):
            return jsonify({"error": "unsupported_grant_type"}), 400
        access = f"oauth-{next(serial)}"
        st["tokens"].add(access)
        answer = {"access_token": access, "token_type": "Bearer", "expires_in": 3600}
        if form.get("grant_type") == "refresh_token":
            answer["refresh_token"] = REFRESH_TOKEN
        return jsonify(answer)

    @app.post("/items-batch")
    def create_batch():
        records = request.get_json()["records"]
        results = []
        for record in records:
            if record.get("bad"):
                results.append({"error": {"message": "name is required"}})
            else:
                st["created"].append(record)
                results.append({"id": f"b-{len(st['created'])}"})
        return jsonify({"results": results})

    @app.get("/items-offset")
    def items_offset():
        offset, limit = int(request.args["offset"]), int(request.args["limit"])
        return jsonify(RECORDS[offset : offset + limit])

    @app.get("/items-cursor")
    def items_cursor():
        start = int(request.args.get("cursor", 0))
        chunk = RECORDS[start : start + 10]
        following = start + 10 if start + 10 < len(RECORDS) else None
        return jsonify({"results": chunk, "meta": {"next": str(following) if following else None}})

    @app.get("/items-link")
    def items_link():
        start = int(request.args.get("start", 0))
        response = jsonify(RECORDS[start : start + 7])
        if start + 7 < len(RECORDS):
            # Like GitHub: the next link repeats every query parameter, an API key too.
            query = urllib.parse.urlencode({**request.args, "start": start + 7})
            response.headers["Link"] = f'</items-link?{query}>; rel="next", </items-link>; rel="first"'
        return response

    @app.get("/items-evil-link")
    def items_evil_link():
        response = jsonify(RECORDS[:2])
        response.headers["Link"] = '<http://attacker.invalid/steal>; rel="next"'
        return response

    @app.get("/items-delta")
    def items_delta():
        since = request.args["updated_since"]
        return jsonify([r for r in RECORDS if r["updated"] > since])

    @app.post("/items")
    def create():
        body = request.get_json()
        with st["lock"]:
            st["in_flight"] += 1
            st["max_in_flight"] = max(st["max_in_flight"], st["in_flight"])
        try:
            time.sleep(body.get("sleep", 0))
            if body.get("bad"):
                return jsonify({"message": "name is required"}), 422
            if body.get("forbidden"):
                return jsonify({"error": "not your tenant"}), 403
            if body.get("boom"):
                return "upstream exploded", 500
            st["created"].append(body)
            return jsonify({"data": {"id": f"new-{len(st['created'])}"}}), 201
        finally:
            with st["lock"]:
                st["in_flight"] -= 1

    @app.route("/items/<item_id>", methods=["PUT", "PATCH"])
    def update(item_id):
        if item_id == "missing":
            return jsonify({"message": "no such item"}), 404
        body = request.get_json()
        time.sleep(body.get("sleep", 0))
        with st["lock"]:
            st["versions"][item_id] = body.get("v")
        return "", 204

    return app


class ApiServer:
    def __init__(self):
        self.app = create_api()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def state(self):
        return self.app.state

    def fail(self, path, status, times, retry_after=None):
        self.state["fail"][path] = {"status": status, "times": times, "retry_after": retry_after}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
