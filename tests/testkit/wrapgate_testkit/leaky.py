"""Connector ``leaky``: puts the call's secrets everywhere a plugin can put them.

Every function reads what to leak from ``connection.unencrypted.leak`` and
emits every secret of the call (the string values of ``encrypted`` and the
``bearerToken``) in the forms text gives them: raw, JSON-escaped, URL-encoded,
base64 (as in a Basic header) and split in two pieces. ``tests/test_secrets.py``
checks that none of it leaves the gateway.
"""

import base64
import json
import logging
import sys
import threading
import urllib.parse
import warnings

import gevent

from gateway import hookimpl

log = logging.getLogger("wrapgate_testkit.leaky")


class Escape(BaseException):
    """Not an Exception: it gets past the app to gunicorn's own error handling."""


class CodedError(Exception):
    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


class Opaque:
    """An object a log call passes as an extra field: JSON gets its str()."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return f"Opaque({self.text})"


def _secrets(encrypted, bearer):
    found = [v for v in (encrypted or {}).values() if isinstance(v, str) and len(v) >= 6]
    return found + ([bearer] if bearer else [])


def forms(secret):
    """The planted forms of one secret, each a complete text."""
    return [
        f"raw {secret} end",
        json.dumps({"password": secret}),
        f"postgresql://user:{urllib.parse.quote(secret, safe='')}@db.invalid/shop",
        "Authorization: Basic " + base64.b64encode(f"user:{secret}".encode()).decode(),
        "token=" + base64.urlsafe_b64encode(f"xy{secret}".encode()).decode(),
    ]


def _texts(encrypted, bearer):
    return [text for secret in _secrets(encrypted, bearer) for text in forms(secret)]


def _output(texts, secrets):
    """Every way a plugin writes text out of band."""
    for text in texts:
        log.warning("leak %s", text)
        log.info("extra field", extra={"leak": text, "nested": {"deep": [text]}, "obj": Opaque(text)})
        print(text)
        sys.stderr.write(text + "\n")
        warnings.warn(f"warned {text}", stacklevel=1)
    for secret in secrets:
        half = len(secret) // 2
        # Split: one line written in two pieces, one message from two arguments.
        sys.stdout.write(f"split {secret[:half]}")
        sys.stdout.write(f"{secret[half:]} done\n")
        sys.stdout.flush()
        log.warning("split %s%s", secret[:half], secret[half:])
        print("split stderr", secret[:half], end="", file=sys.stderr)
        print(secret[half:], file=sys.stderr)


def _background(texts, secrets):
    """Logs and fails in a thread (a greenlet under gevent), and in a real OS thread,
    none of which carries the call's context."""

    def work():
        _output(texts[:2], secrets)
        log.error("background %s", texts[0], extra={"leak": texts[0]})

    def fail():
        raise RuntimeError(f"thread failed with {texts[0]}")

    threads = [threading.Thread(target=work), threading.Thread(target=fail)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    gevent.spawn(fail).join(10)  # an uncaught exception in a greenlet
    gevent.get_hub().threadpool.spawn(work).get(timeout=10)


@hookimpl
def wrapgate_ping(unencrypted, encrypted, options):
    texts = _texts(encrypted, options.get("bearerToken"))
    secrets = _secrets(encrypted, options.get("bearerToken"))
    leak = unencrypted.get("leak")
    if leak == "output":
        _output(texts, secrets)
        return None
    if leak == "background":
        _background(texts, secrets)
        return None
    if leak == "result":
        return {"statusCode": 401, "errors": [{"code": t, "message": [t], "field": t} for t in texts]}
    if leak == "raise":
        try:
            raise KeyError(texts[0])
        except KeyError as cause:
            raise ValueError(" | ".join(texts)) from cause
    if leak == "coded":
        raise CodedError(texts[0], code=secrets[0])
    if leak == "escape":
        raise Escape(" | ".join(texts))
    if leak == "short":
        raise ValueError("record 2 of 12 failed in eu-west; ssl is true")
    return None


@hookimpl
def wrapgate_export(unencrypted, encrypted, options):
    texts = _texts(encrypted, options.get("bearerToken"))
    return {
        "data": [{"n": 1}],
        "lastPage": True,
        "errors": [
            {"code": "bad", "message": t, "source": t, "errors": [{"source": t, "message": [t]}]}
            for t in texts
        ],
    }


@hookimpl
def wrapgate_import(postMapData, encrypted, options):
    texts = _texts(encrypted, options.get("bearerToken"))
    results = []
    for position, _ in enumerate(postMapData):
        text = texts[position % len(texts)]
        shape = position % 4
        if shape == 0:
            results.append(
                {"statusCode": 422, "id": text, "errors": [{"code": "bad", "message": "x", "field": text}]}
            )
        elif shape == 1:
            results.append(
                {"statusCode": 422, "id": "r", "errors": [{"code": "bad", "message": [text, "two"]}]}
            )
        elif shape == 2:
            results.append({"statusCode": 422, "id": "r", "errors": text})
        else:
            results.append(
                {
                    "statusCode": 200,
                    "id": "ok",
                    "errors": [{"code": "partial", "message": "m", "errors": [{"x": text}]}],
                }
            )
    return results
