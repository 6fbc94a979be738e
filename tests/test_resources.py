"""gateway.resources.PerConnection: one client per distinct connection, bounded."""

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
