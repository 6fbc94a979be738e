"""A plugin built for another contract is refused by name, with its reason; the others serve."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

from support import ROOT, TESTKIT, post

from gateway import CONTRACT_VERSION
from gateway.contract import incompatibility


def test_a_plugin_declaring_another_contract_is_refused():
    plugin = SimpleNamespace(WRAPGATE_CONTRACT=CONTRACT_VERSION + 1)
    reason = incompatibility(plugin)
    assert f"contract {CONTRACT_VERSION + 1}" in reason and f"serves contract {CONTRACT_VERSION}" in reason


def test_a_plugin_declaring_this_contract_or_none_loads():
    assert incompatibility(SimpleNamespace(WRAPGATE_CONTRACT=CONTRACT_VERSION)) is None
    assert incompatibility(SimpleNamespace()) is None


def test_the_distribution_pin_is_checked_against_the_running_core():
    dist = SimpleNamespace(requires=["requests>=2", "wrapgate>=0.2,<0.3"])
    assert incompatibility(object(), dist, running="0.2.7") is None
    reason = incompatibility(object(), dist, running="0.3.0")
    assert "requires wrapgate<0.3,>=0.2" in reason and "0.3.0 is running" in reason
    # A requirement behind an extra the plugin was not installed with is not the plugin's pin.
    extra = SimpleNamespace(requires=['wrapgate<0.1; extra == "legacy"'])
    assert incompatibility(object(), extra, running="0.2.0") is None


def test_plugins_lists_both_refusals_with_reasons_while_the_others_serve(testkit_site):
    env = dict(os.environ, PYTHONPATH=f"{testkit_site}:{TESTKIT}")
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "plugins", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    listed = {p["name"]: p for p in json.loads(out.stdout)["connectors"]}
    assert not listed["future"]["loaded"] and "built for plugin contract 2" in listed["future"]["error"]
    assert not listed["oldpin"]["loaded"]
    assert "requires wrapgate<0.2,>=0.1" in listed["oldpin"]["error"]
    assert listed["kit"]["loaded"] and listed["sql"]["loaded"]


def test_calls_to_a_refused_plugin_name_its_reason_and_others_are_served(gateway):
    body = {"diy": True, "function": "future.ping", "options": {}}
    answer = post(gateway.url, body)
    assert answer.status_code == 422
    (error,) = answer.json()["errors"]
    assert error["code"] == "connector_unavailable" and "contract 2" in error["message"]
    assert post(gateway.url, dict(body, function="kit.ping")).json() == {"statusCode": 200}
