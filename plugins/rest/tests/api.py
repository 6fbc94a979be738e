"""A real HTTP/JSON API for the rest connector's tests, served on 127.0.0.1 from a thread.

It paginates four ways, authenticates three ways, fails and rate-limits on
demand, and records what it was sent.
"""

from __future__ import annotations

import base64
import threading
import time

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

TOKEN = "api-Token-123"
USER, PASSWORD = "ada", "api-Pass-456"
API_KEY = "api-Key-789"
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
    }
    st = app.state

    def authorised() -> bool:
        header = request.headers.get("Authorization", "")
        if header == f"Bearer {TOKEN}":
            return True
        if header.startswith("Basic "):
            return base64.b64decode(header[6:]).decode() == f"{USER}:{PASSWORD}"
        return request.headers.get("X-Api-Key") == API_KEY or request.args.get("key") == API_KEY

    @app.before_request
    def record_and_guard():
        st["calls"].append((request.method, request.full_path))
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
            response.headers["Link"] = (
                f'</items-link?start={start + 7}>; rel="next", </items-link>; rel="first"'
            )
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
