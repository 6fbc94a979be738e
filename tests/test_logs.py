"""Log records in-process: the call's fields, masking at the source, plugins' own handlers."""

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

from gateway import access, logs
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


def _lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_extra_fields_of_any_type_are_masked_and_the_line_stays_json():
    stream = io.StringIO()
    logs.configure("INFO", "json", stream)

    class Opaque:
        def __str__(self):
            return "opaque Extra-Secret-55"

    logs.reset()
    logs.bind_scrubber(Scrubber(["Extra-Secret-55"]))
    try:
        logging.getLogger("test.plugin").info(
            "extras",
            extra={"leak": "Extra-Secret-55", "nested": {"l": ["a Extra-Secret-55"]}, "obj": Opaque()},
        )
    finally:
        logs.reset()
    (line,) = _lines(stream)
    assert line["leak"] == "********" and line["nested"] == {"l": ["a ********"]}
    assert line["obj"] == "opaque ********"


def test_flat_lines_are_masked_in_keys_values_and_numbers_and_kept_exact_otherwise():
    # Flat lines (strings, numbers, bools, None) take a fast path: it must mask the same.
    stream = io.StringIO()
    logs.configure("INFO", "json", stream)
    logs.reset()
    logs.bind(request_id="req-flat", connection_id="conn-9")
    logs.bind_scrubber(Scrubber(["Flat-Secret-66", "80412345"]))
    try:
        log = logging.getLogger("test.plugin")
        log.info(
            "plain",
            extra={"n": 3, "ratio": 0.731, "ok": True, "none": None, "big": 2**40, "nan": float("nan")},
        )
        log.info("value", extra={"why": "refused Flat-Secret-66"})
        log.info("key", extra={"Flat-Secret-66": 1})
        log.info("number", extra={"account": 180412345, "share": 80412345.5})
        log.info("message %s", "Flat-Secret-66")
    finally:
        logs.reset()
    plain, value, key, number, message = _lines(stream)
    assert {k: plain[k] for k in ("n", "ratio", "ok", "none", "big", "nan")} == {
        "n": 3,
        "ratio": 0.731,
        "ok": True,
        "none": None,
        "big": 2**40,
        "nan": None,
    }
    assert plain["request_id"] == "req-flat" and plain["connection_id"] == "conn-9"
    assert value["why"] == "refused ********"
    assert "********" in key and "Flat-Secret-66" not in stream.getvalue()
    assert number["account"] == "********" and number["share"] == "********"
    assert message["message"] == "message ********"


def test_access_lines_are_records_of_their_logger_its_level_and_filters_apply():
    # The access line is an ordinary record of gateway.access: the logger's level
    # and filters govern it, and it carries the call's request id and traceid.
    stream = io.StringIO()
    logs.configure("INFO", "json", stream)
    logger = logging.getLogger("gateway.access")

    class Meter:
        def http_request(self, route, status):
            pass

    def line(status):
        environ = {}
        access.begin(environ, "trace-7")
        access.done(Meter(), environ, "POST", "/function", "/function", status, 18)

    def drop_404(record):
        return record.status != 404

    level = logger.level
    logger.addFilter(drop_404)
    try:
        line(200)
        line(404)
        logger.setLevel(logging.WARNING)
        line(201)
    finally:
        logger.removeFilter(drop_404)
        logger.setLevel(level)
        logs.reset()
    (only,) = _lines(stream)
    assert only["message"] == "POST /function 200" and only["logger"] == "gateway.access"
    assert (only["method"], only["path"], only["status"], only["response_bytes"]) == (
        "POST",
        "/function",
        200,
        18,
    )
    assert only["traceid"] == "trace-7" and len(only["request_id"]) == 16 and only["duration_ms"] >= 0


def test_records_outside_any_call_are_masked_with_recent_secrets():
    """A plugin's background thread has no call context: the secrets of recent calls are masked."""
    import threading

    from gateway.parsed import Connection
    from gateway.scrub import scrubber_for

    stream = io.StringIO()
    logs.configure("INFO", "json", stream)
    scrubber_for(Connection.parse({"encrypted": {"password": "Thread-Secret-88"}}))
    thread = threading.Thread(
        target=lambda: logging.getLogger("test.thread").warning(
            "from a thread %s", "Thread-Secret-88", extra={"x": "Thread-Secret-88"}
        )
    )
    thread.start()
    thread.join(5)
    (line,) = _lines(stream)
    assert line["message"] == "from a thread ********" and line["x"] == "********"


def test_gunicorn_lines_lose_query_strings_and_arguments_that_do_not_fit_are_not_printed():
    stream = io.StringIO()
    logs.configure("INFO", "json", stream)
    logging.getLogger("gunicorn.error").error(
        "Error handling request %s %s", "POST", "/function?access_token=abc"
    )
    logging.getLogger("test.plugin").warning("one %s", "Unfit-Arg-1", "Unfit-Arg-2")
    first, second = _lines(stream)
    assert first["message"] == "Error handling request POST /function?..."
    assert "Unfit-Arg" not in second["message"] and "did not fit" in second["message"]
    assert (
        logs.strip_query("what? see https://h/x?a=1&b=2 and /p?q") == "what? see https://h/x?... and /p?..."
    )


def test_captured_output_becomes_masked_json_lines(monkeypatch):
    import sys
    import threading
    import warnings

    stream = io.StringIO()
    logs.configure("INFO", "json", stream)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    if "gevent" in sys.modules:  # capture_output replaces the hub's printer of failed greenlets
        hub = sys.modules["gevent"].get_hub()
        monkeypatch.setattr(hub, "print_exception", hub.print_exception)
    logs.capture_output()
    try:
        logs.reset()
        logs.bind_scrubber(Scrubber(["Printed-Secret-99"]))
        sys.stdout.write("split Printed-")
        sys.stdout.write("Secret-99 done\nsecond line\n")
        print("to stderr Printed-Secret-99", file=sys.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("warned Printed-Secret-99", stacklevel=1)
        thread = threading.Thread(target=lambda: 1 / 0)
        thread.start()
        thread.join(5)
    finally:
        logs.reset()
        logging.captureWarnings(False)
    lines = _lines(stream)
    by_logger = {}
    for line in lines:
        by_logger.setdefault(line["logger"], []).append(line["message"])
    assert by_logger["gateway.stdout"] == ["split ******** done", "second line"]
    assert by_logger["gateway.stderr"] == ["to stderr ********"]
    assert "warned ********" in by_logger["py.warnings"][0]
    assert (
        "ZeroDivisionError" in next(line for line in lines if line["logger"] == "gateway.thread")["exception"]
    )
    assert "Printed-Secret-99" not in stream.getvalue()
    # Nothing reached the original streams.
    assert sys.stdout.original.getvalue() == "" and sys.stderr.original.getvalue() == ""


# gunicorn's logger as config/gunicorn.conf.py sets it up, asked for one access line;
# prints how many times it built the line's atoms.
_ACCESS = """
import datetime, runpy, sys
from gunicorn.config import Config
cfg = Config()
for name, value in runpy.run_path("config/gunicorn.conf.py").items():
    if name in cfg.settings:
        cfg.set(name, value)
if len(sys.argv) > 1:
    cfg.set("accesslog", sys.argv[1])
log = cfg.logger_class(cfg)
built = []
log.atoms = lambda *args: built.append(args) or {}
log.access(None, None, {}, datetime.timedelta(0))
print(len(built))
"""


def test_gunicorn_builds_no_access_line_of_its_own_unless_accesslog_is_set(tmp_path):
    # The JSON log format gives gunicorn a logconfig_dict, which made it build every
    # request's access atoms (about 20 us) for a logger that writes nowhere.
    root = Path(__file__).resolve().parent.parent
    env = {"PATH": "/usr/bin:/bin", "WRAPGATE_LOG_FORMAT": "json"}

    def built(*args):
        out = subprocess.run(
            [sys.executable, "-c", _ACCESS, *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split()[-1])

    assert built() == 0
    assert built(str(tmp_path / "access.log")) == 1  # asked for: gunicorn's line as before
