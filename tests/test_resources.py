"""gateway.resources.PerConnection: one client per distinct connection, bounded."""

import subprocess
import sys

import pytest

from gateway.resources import PerConnection


def test_same_connection_shares_a_client_and_a_new_password_gets_a_new_one():
    made, disposed = [], []
    cache = PerConnection(lambda u, e: made.append((u, e)) or len(made), dispose=disposed.append, capacity=2)
    first = cache.get({"host": "db"}, {"password": "one"})
    assert cache.get({"host": "db"}, {"password": "one"}) == first
    second = cache.get({"host": "db"}, {"password": "two"})
    assert second != first and len(made) == 2 and not disposed


def test_least_recently_used_is_disposed_beyond_capacity():
    disposed = []
    cache = PerConnection(lambda u, e: u["n"], dispose=disposed.append, capacity=2)
    cache.get({"n": 1}, {})
    cache.get({"n": 2}, {})
    cache.get({"n": 1}, {})  # 1 is now the most recent
    cache.get({"n": 3}, {})
    assert disposed == [2] and len(cache) == 2
    cache.clear()
    assert sorted(disposed) == [1, 2, 3] and len(cache) == 0


def test_keys_hold_no_secret():
    key = PerConnection.key({"host": "db"}, {"password": "Plain-Secret-1"})
    assert "Plain-Secret-1" not in key and len(key) == 64


EXITING = r"""
import subprocess
import sys

import pytest

from gateway.resources import PerConnection


def dispose(client):
    if client == "broken":
        raise RuntimeError("dispose failed")
    print("disposed", client, flush=True)


first = PerConnection(lambda u, e: u["name"], dispose=dispose)
second = PerConnection(lambda u, e: u["name"], dispose=dispose)
first.get({"name": "broken"}, {})
first.get({"name": "a"}, {})
second.get({"name": "b"}, {})
print("exiting", flush=True)
"""


def test_what_is_held_at_exit_is_disposed_even_after_a_failed_dispose():
    # A database engine's pooled connections are closed when the process ends,
    # not dropped with it (nor freed by the interpreter, warning they were open).
    out = subprocess.run([sys.executable, "-c", EXITING], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "exiting"
    assert sorted(out.stdout.split("\n")[1:-1]) == ["disposed a", "disposed b"], out.stdout


def test_clear_tries_every_client_and_then_raises_the_first_failure():
    disposed = []

    def dispose(client):
        if client.startswith("broken"):
            raise RuntimeError(client)
        disposed.append(client)

    cache = PerConnection(lambda u, e: u["name"], dispose=dispose)
    for name in ("broken-1", "a", "broken-2", "b"):
        cache.get({"name": name}, {})
    with pytest.raises(RuntimeError, match="broken-1"):
        cache.clear()
    assert disposed == ["a", "b"] and len(cache) == 0
