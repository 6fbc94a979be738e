"""Log records in-process: the call's fields, masking at the source, plugins' own handlers."""

import io
import json
import logging

from gateway import logs
from gateway.scrub import Scrubber


def test_every_handler_sees_masked_records_with_the_calls_fields():
    stream = io.StringIO()
    logs.configure("INFO", "json", stream)
    # A plugin that writes to a handler of its own, not through the root logger.
    own = io.StringIO()
    plugin_log = logging.getLogger("test.plugin.own")
    plugin_log.addHandler(logging.StreamHandler(own))
    plugin_log.propagate = False
    logs.reset()
    logs.bind(request_id="req-1", function="kit.ping")
    logs.bind_scrubber(Scrubber(["Hidden-Value-77"]))
    try:
        plugin_log.warning("token %s refused", "Hidden-Value-77")
        logging.getLogger("test.plugin").error("failed", exc_info=ValueError("Hidden-Value-77 in traceback"))
        # A plugin's own extra fields never collide with the gateway's.
        logging.getLogger("test.plugin").info("extra", extra={"function": "mine", "rows": 3})
    finally:
        logs.reset()
        plugin_log.propagate = True
    assert own.getvalue() == "token ******** refused\n"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["request_id"] == "req-1" and "Hidden-Value-77" not in stream.getvalue()
    assert "******** in traceback" in lines[0]["exception"]
    assert lines[1]["function"] == "mine" and lines[1]["rows"] == 3 and lines[1]["request_id"] == "req-1"


def test_configure_replaces_foreign_root_handlers():
    root = logging.getLogger()
    foreign = logging.StreamHandler(io.StringIO())
    root.addHandler(foreign)
    logs.configure("INFO", "console", io.StringIO())
    assert foreign not in root.handlers and len(root.handlers) == 1
