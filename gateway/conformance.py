"""The conformance suite: what every wrapgate connector must do, as pytest tests.

A connector author turns it on with one line, in any test file::

    from gateway.conformance import Conformance


    class TestConformance(Conformance):
        connector = "acme"  # the entry-point name

or without writing a test at all: ``pytest --wrapgate-conformance acme``. Either
way the suite needs one fixture, ``wrapgate_samples`` (in a ``conftest.py``),
returning :class:`Samples`: a connection that works, one the system refuses,
an export configuration that yields at least one record, and records an
import accepts. The connector is loaded from its installed entry point, as
``wrapgate serve`` loads it, and called through the gateway's whole call path.

What it checks: the plugin loads and documents itself; ping answers 200 with
the working connection and ``statusCode`` 401 with the refused one; an export
reaches ``lastPage`` with ``state`` passed back through JSON and never repeats
a page; an import answers one result per record, in order; errors are typed
``{"code", "message"}`` entries and hold no secret of the connection; results
stay within ``maxResponseSize``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import driver, serialize
from .testing import InProcessGateway


@dataclass
class Samples:
    """What the suite calls the connector with. Values are what integrator.io sends."""

    #: a connection resource that works: ``{"_id", "unencrypted", "encrypted"}``
    connection: dict[str, Any]
    #: the same system with credentials it refuses (ping must answer statusCode 401)
    refused_connection: dict[str, Any]
    #: an export configuration that gives at least one record
    export_configuration: Any = None
    #: an import configuration that accepts :attr:`records`
    import_configuration: Any = None
    #: records the sample import accepts (at least one)
    records: list[Any] = field(default_factory=list)


SECTIONS = ("unencrypted", "encrypted")


def _secrets(connection: dict[str, Any]) -> list[str]:
    encrypted = connection.get("encrypted") or (connection.get("wrapper") or {}).get("encrypted") or {}
    return [str(v) for v in encrypted.values() if isinstance(v, str | int) and len(str(v)) >= 4]


class Conformance:
    """Subclass it in a test module and set :attr:`connector`."""

    #: the connector's entry-point name; None takes ``--wrapgate-conformance NAME``
    connector: str | None = None

    # -- fixtures ---------------------------------------------------------

    @pytest.fixture
    def wrapgate_connector_name(self, request: pytest.FixtureRequest) -> str:
        name = self.connector or request.config.getoption("wrapgate_conformance", None)
        if not name:
            pytest.fail(
                "set `connector = NAME` on the Conformance subclass or pass --wrapgate-conformance NAME"
            )
        return str(name)

    @pytest.fixture
    def conformance_gateway(self, wrapgate_connector_name: str) -> InProcessGateway:
        return InProcessGateway(installed=[wrapgate_connector_name], call_timeout=60)

    @pytest.fixture
    def samples(self, wrapgate_samples: Any) -> Samples:
        value = wrapgate_samples
        return value if isinstance(value, Samples) else Samples(**value)

    def _function(self, gateway: InProcessGateway, name: str, kind: str) -> str:
        connector = gateway.registry.connectors[name]
        if kind not in connector.functions:
            pytest.skip(f"{name} has no {kind} function")
        return f"{name}.{kind}"

    def _no_secret(self, answer: Any, samples: Samples) -> None:
        text = serialize.dumps(answer).decode()
        for secret in _secrets(samples.connection) + _secrets(samples.refused_connection):
            assert secret not in text, "a secret of the connection's encrypted section is in the answer"

    def _refused(self, answer: Any, errors: Any, samples: Samples) -> None:
        """A refused connection's answer: typed errors, no secret."""
        self._typed(errors)
        self._no_secret(answer, samples)

    def _typed(self, errors: Any) -> None:
        assert isinstance(errors, list) and errors, f"errors must be a non-empty list, got {errors!r}"
        for entry in errors:
            assert isinstance(entry, dict) and set(entry) >= {"code", "message"}, entry
            assert isinstance(entry["code"], str) and entry["code"], entry
            assert isinstance(entry["message"], str), entry

    # -- the plugin -------------------------------------------------------

    def test_loads_and_documents_itself(self, conformance_gateway, wrapgate_connector_name):
        """It loads from its entry point, pluggy accepts every hook's arguments,
        and its module says what it connects to."""
        connector = conformance_gateway.registry.connectors.get(wrapgate_connector_name)
        assert connector is not None, f"no installed entry point {wrapgate_connector_name!r}"
        assert connector.error is None, connector.error
        assert connector.functions, "it serves no function"
        assert (inspect.getdoc(connector.plugin) or "").strip(), "the plugin module has no docstring"
        for section, schema in connector.schemas.items():
            assert section in SECTIONS, f"wrapgate_connection_schemas names an unknown section {section!r}"
            assert hasattr(schema, "load"), f"the {section} schema is not a marshmallow Schema"

    # -- ping -------------------------------------------------------------

    def test_ping_answers_200_with_a_working_connection(
        self, conformance_gateway, wrapgate_connector_name, samples
    ):
        function = self._function(conformance_gateway, wrapgate_connector_name, "ping")
        status, answer = conformance_gateway.call(function, {"connection": samples.connection})
        assert (status, answer) == (200, {"statusCode": 200})

    def test_ping_answers_401_with_refused_credentials(
        self, conformance_gateway, wrapgate_connector_name, samples
    ):
        function = self._function(conformance_gateway, wrapgate_connector_name, "ping")
        status, answer = conformance_gateway.call(function, {"connection": samples.refused_connection})
        assert status == 200 and answer.get("statusCode") == 401, answer
        self._refused(answer, answer.get("errors"), samples)

    # -- export -----------------------------------------------------------

    def test_export_pages_end_and_state_round_trips(
        self, conformance_gateway, wrapgate_connector_name, samples
    ):
        function = self._function(conformance_gateway, wrapgate_connector_name, "export")
        options = driver.export_options(samples.connection, samples.export_configuration)
        summary = driver.ReadSummary()
        pages = list(driver.read(conformance_gateway.call, function, options, summary, max_pages=1000))
        assert summary.problem is None, summary.problem
        assert summary.records >= 1, "the sample export configuration gave no record"
        for page in pages:
            serialize.dumps(page.get("state"))  # state must survive the trip through JSON
            assert all(isinstance(record, dict) for record in page["data"]), "records must be objects"

    def test_export_refused_takes_the_connection_offline(
        self, conformance_gateway, wrapgate_connector_name, samples
    ):
        function = self._function(conformance_gateway, wrapgate_connector_name, "export")
        options = driver.export_options(samples.refused_connection, samples.export_configuration)
        status, answer = conformance_gateway.call(function, options)
        assert status == 200 and answer.get("connectionOffline") is True, answer
        self._refused(answer, answer.get("errors"), samples)

    def test_export_results_stay_within_max_response_size(
        self, conformance_gateway, wrapgate_connector_name, samples
    ):
        function = self._function(conformance_gateway, wrapgate_connector_name, "export")
        options = driver.export_options(samples.connection, samples.export_configuration)
        status, answer = conformance_gateway.call(function, options)
        assert status == 200, answer
        size = len(serialize.dumps(answer))
        assert size <= 5 * 1024 * 1024
        # One byte under the page: the gateway refuses it, shaped, instead of sending it.
        status, answer = conformance_gateway.call(function, options, maxResponseSize=size - 1)
        assert status == 422 and answer["errors"][0]["code"] == "response_size_exceeded", answer

    # -- import -----------------------------------------------------------

    def test_import_answers_one_result_per_record_in_order(
        self, conformance_gateway, wrapgate_connector_name, samples
    ):
        function = self._function(conformance_gateway, wrapgate_connector_name, "import")
        assert samples.records, "give Samples.records: records the sample import accepts"
        records = list(samples.records)
        options = {"connection": samples.connection, "configuration": samples.import_configuration}
        outcomes = list(
            driver.write(conformance_gateway.call, function, options, records, batch=len(records))
        )
        assert [o["index"] for o in outcomes] == list(range(len(records)))
        failed = [o for o in outcomes if o.get("statusCode") != 200]
        assert not failed, failed
        assert all(isinstance(o.get("id"), str | int) or o.get("ignored") for o in outcomes), outcomes

    def test_import_refused_answers_401_for_every_record(
        self, conformance_gateway, wrapgate_connector_name, samples
    ):
        function = self._function(conformance_gateway, wrapgate_connector_name, "import")
        records = list(samples.records)
        options = {
            "connection": samples.refused_connection,
            "configuration": samples.import_configuration,
            "postMapData": records,
            "preMapData": records,
        }
        status, answer = conformance_gateway.call(function, options)
        assert status == 200 and isinstance(answer, list) and len(answer) == len(records), answer
        for entry in answer:
            assert entry["statusCode"] == 401, entry
            self._refused(answer, entry.get("errors"), samples)

    # -- errors -----------------------------------------------------------

    def test_bad_configuration_is_a_typed_error_without_secrets(
        self, conformance_gateway, wrapgate_connector_name, samples
    ):
        """A configuration nobody would write: either refused before the call
        (declared schema) or by the connector, always as typed errors."""
        name = wrapgate_connector_name
        connector = conformance_gateway.registry.connectors[name]
        for function, kind in sorted(connector.functions.items()):
            if kind == "ping":
                continue
            options = {
                "connection": samples.connection,
                "configuration": {"wrapgateConformanceUnknownField": [None]},
                "postMapData": [{}],
                "preMapData": [{}],
            }
            status, answer = conformance_gateway.call(f"{name}.{function}", options)
            if status != 200:
                self._typed(answer.get("errors"))
            self._no_secret(answer, samples)
