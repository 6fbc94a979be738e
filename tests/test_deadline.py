"""The deadline and the plugin import guard, in-process (plain threads, no gevent).

The same code runs under gunicorn's gevent worker on a gevent thread pool:
tests/test_faults.py covers that path over HTTP.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import weakref

import pytest

from gateway import deadline, isolation
from gateway.errors import DeadlineExceeded


def test_a_result_and_an_error_come_back_as_they_are():
    assert deadline.call_with_deadline(lambda: 42, 5, "t") == 42
    with pytest.raises(ZeroDivisionError):
        deadline.call_with_deadline(lambda: 1 / 0, 5, "t")


def test_a_parked_thread_keeps_nothing_of_its_last_call():
    # An export's page is the call's result: a runner parked after the call must
    # let it go, not hold it until its next call.
    class Page(list):
        pass

    got = deadline.call_with_deadline(lambda: Page(range(1000)), 5, "page")
    assert got == list(range(1000))
    gone = weakref.ref(got)
    del got
    for _ in range(100):
        gc.collect()
        if gone() is None:
            break
        time.sleep(0.01)
    assert gone() is None, gc.get_referrers(gone())


@pytest.mark.parametrize(
    "end, code",
    [
        (lambda: sys.exit(4), "SystemExit"),
        (lambda: (_ for _ in ()).throw(KeyboardInterrupt), "KeyboardInterrupt"),
    ],
)
def test_an_exit_in_a_call_ends_the_call_not_the_process(end, code):
    with pytest.raises(deadline.CallAborted) as caught:
        deadline.call_with_deadline(end, 5, "t")
    assert caught.value.code == code


def test_calls_reuse_a_parked_thread_but_never_one_an_abandoned_call_still_holds():
    def where():
        thread = threading.current_thread()
        return thread, thread.name

    first, name = deadline.call_with_deadline(where, 5, "one")
    assert name == "call one"
    again, name = deadline.call_with_deadline(where, 5, "two")
    assert again is first and name == "call two"  # no new thread
    release = threading.Event()
    held = []

    def hold():
        held.append(threading.current_thread())
        release.wait(10)

    with pytest.raises(DeadlineExceeded):
        deadline.call_with_deadline(hold, 0.2, "held")
    try:
        assert deadline.call_with_deadline(where, 5, "beside")[0] is not held[0]
    finally:
        release.set()


def test_a_call_that_swallows_every_interruption_still_meets_its_deadline():
    release = threading.Event()

    def stubborn():
        while not release.is_set():
            try:
                time.sleep(0.01)
            except BaseException:  # noqa: BLE001 - the misdeed under test
                pass

    began = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        deadline.call_with_deadline(stubborn, 0.3, "stubborn")
    assert time.monotonic() - began < 0.3 + 2
    assert deadline.runaway(0) == ["stubborn"]
    ended = threading.Event()
    assert deadline.after_abandoned(caught.value, ended.set)
    assert not ended.wait(0.2)  # the abandoned call still runs
    release.set()
    assert ended.wait(5)  # the action runs once it really ends
    assert deadline.runaway(0) == []
    assert not deadline.after_abandoned(DeadlineExceeded("other"), ended.set)


class _EntryPoint:
    def __init__(self, load):
        self.load = load


@pytest.mark.parametrize(
    "load, reason",
    [
        (lambda: os._exit(3), "os._exit(3)"),
        (lambda: sys.exit(4), "SystemExit"),
        (lambda: (_ for _ in ()).throw(KeyboardInterrupt), "KeyboardInterrupt"),
        (lambda: __import__("wrapgate_no_such_module"), "ModuleNotFoundError"),
    ],
)
def test_whatever_an_import_does_becomes_an_ordinary_failure(load, reason):
    with pytest.raises(isolation.ImportFailed) as caught:
        isolation.load(_EntryPoint(load))
    assert reason in str(caught.value)
    assert os._exit.__name__ == "_exit"  # the real one is back
