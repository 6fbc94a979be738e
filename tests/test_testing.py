"""gateway.testing.GatewayProcess: ready only when a worker answers, and never leaves a process behind."""

import os
import signal

import pytest
from support import TESTKIT

from gateway.testing import GatewayProcess, wait_until

SLOW_PLUGIN = '''"""Connector ``slow``: takes seconds to import, as a heavy driver does."""
import time

from gateway import hookimpl

time.sleep(4)


@hookimpl
def wrapgate_ping():
    return None
'''


def write_site(folder, name, module_source):
    info = folder / f"wrapgate_{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: wrapgate-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[wrapgate]\n{name} = wrapgate_{name}\n")
    (folder / f"wrapgate_{name}.py").write_text(module_source)
    return folder


def gone(pgid):
    """True once no process of the group is left; a killed one lingers as a zombie
    until init reaps it, so this waits a bounded while."""

    def empty():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        return wait_until(empty, 15, interval=0.1)
    except TimeoutError:
        return False


def test_start_waits_through_read_timeouts_while_workers_boot(tmp_path):
    # The master binds at once; the only worker takes 4 s to import the plugin, so the
    # first /livez polls time out reading (2 s): that must mean "not yet", not an error.
    site = write_site(tmp_path / "site", "slow", SLOW_PLUGIN)
    server = GatewayProcess(tmp_path, env={"WRAPGATE_PLUGINS": "slow"}, workers=1, pythonpath=[site])
    with server:
        assert server.call("slow.ping", {}).json() == {"statusCode": 200}
    assert server.proc.returncode == 0 and gone(server.proc.pid)


def test_a_gateway_that_cannot_start_is_stopped_and_reported(tmp_path):
    # Strict mode with a plugin that fails to import: the workers refuse to boot.
    env = {"WRAPGATE_PLUGINS": "broken", "WRAPGATE_STRICT_PLUGINS": "1"}
    site = write_site(tmp_path / "site", "broken", "import wrapgate_missing_driver_module\n")
    server = GatewayProcess(tmp_path, env=env, workers=1, pythonpath=[site, TESTKIT])
    with pytest.raises(RuntimeError, match="gunicorn exited") as failure:
        server.start(timeout=60)
    assert "wrapgate_missing_driver_module" in str(failure.value)
    assert server.proc.poll() is not None and gone(server.proc.pid)


def test_a_start_that_times_out_leaves_nothing_behind(tmp_path):
    site = write_site(tmp_path / "site", "slow", SLOW_PLUGIN)
    server = GatewayProcess(tmp_path, env={"WRAPGATE_PLUGINS": "slow"}, workers=2, pythonpath=[site])
    with pytest.raises(TimeoutError, match="not reached within 1 s"):
        server.start(timeout=1)  # the workers are still importing
    assert server.proc.poll() is not None and gone(server.proc.pid)


def test_stop_kills_what_outlives_the_master(tmp_path):
    server = GatewayProcess(tmp_path, workers=1).start()
    workers = server.workers()
    assert workers
    os.kill(server.proc.pid, signal.SIGKILL)  # the master dies; its worker would linger
    server.proc.wait(10)
    server.stop()
    assert gone(server.proc.pid)
