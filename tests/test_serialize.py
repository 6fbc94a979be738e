"""gateway.serialize: parsing bodies with the garbage collector paused, and left as it was."""

from __future__ import annotations

import gc

import orjson
import pytest

from gateway import serialize

RECORDS = [{"id": f"r{i}", "tags": ["a", "b"], "address": {"zip": str(i)}} for i in range(2000)]
LARGE = orjson.dumps({"options": {"postMapData": RECORDS}})


@pytest.fixture
def collector():
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_a_large_body_parses_the_same_and_the_collector_runs_on(collector):
    assert len(LARGE) >= serialize.PAUSE_COLLECTOR_FROM
    gc.enable()
    assert serialize.loads(LARGE) == {"options": {"postMapData": RECORDS}}
    assert serialize.loads(LARGE.decode()) == orjson.loads(LARGE)
    assert gc.isenabled()


def test_the_collector_is_paused_while_a_large_body_is_parsed(collector, monkeypatch):
    seen, real = [], orjson.loads

    def parse(data):
        seen.append(gc.isenabled())
        return real(data)

    monkeypatch.setattr(serialize.orjson, "loads", parse)
    gc.enable()
    serialize.loads(LARGE)
    serialize.loads(b'{"function": "ping"}')  # a small body: nothing to pause for
    assert seen == [False, True]
    assert gc.isenabled()


def test_bad_json_raises_value_error_and_the_collector_is_back(collector):
    gc.enable()
    with pytest.raises(ValueError):
        serialize.loads(LARGE[:-1])
    assert gc.isenabled()


def test_a_collector_turned_off_elsewhere_stays_off(collector):
    gc.disable()
    assert serialize.loads(LARGE)["options"]["postMapData"][-1]["id"] == "r1999"
    assert not gc.isenabled()
