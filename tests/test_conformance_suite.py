"""The conformance suite fails a connector that breaks the contract, each test for its own reason.

The suite runs as an author runs it (``pytest --wrapgate-conformance NAME``, the
pytest11 plugin installed with the core) in a subprocess, on ``faulty``
(tests/faultykit): it accepts refused credentials, repeats its export page
forever, answers one import result short and has no docstring.
"""

import os
import subprocess
import sys

from support import FAULTYKIT, write_faulty_site

CONFTEST = """
import pytest
from gateway.conformance import Samples

@pytest.fixture
def wrapgate_samples():
    connection = {"_id": "f1", "unencrypted": {}, "encrypted": {"apiKey": "good-key-123"}}
    return Samples(
        connection=connection,
        refused_connection={**connection, "encrypted": {"apiKey": "refused-key-456"}},
        records=[{"a": 1}, {"a": 2}],
    )
"""


OPTION = ("--wrapgate-conformance", "faulty")


def test_the_suite_fails_each_broken_promise(tmp_path):
    site = write_faulty_site(tmp_path / "site")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text(CONFTEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRAPGATE_")}
    env["PYTHONPATH"] = f"{site}{os.pathsep}{FAULTYKIT}"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests), *OPTION],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    failed = sorted(
        line.split("::")[-1].split(" ")[0] for line in out.stdout.splitlines() if line.startswith("FAILED")
    )
    assert failed == [
        "test_export_pages_end_and_state_round_trips",
        "test_export_refused_takes_the_connection_offline",
        "test_import_answers_one_result_per_record_in_order",
        "test_import_refused_answers_401_for_every_record",
        "test_loads_and_documents_itself",
        "test_ping_answers_401_with_refused_credentials",
    ], out.stdout[-3000:]
    assert "the same page came back 6 times" in out.stdout
    assert "the plugin module has no docstring" in out.stdout
    # What it does right passes: ping, the size limit, a shaped answer to a bad configuration.
    assert "3 passed" in out.stdout and out.returncode == 1
