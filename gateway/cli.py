"""The ``wrapgate`` command: serve, list plugins, and what a connector author and an operator run.

``spec``, ``check``, ``read`` and ``write`` drive a connector as integrator.io
does (:mod:`gateway.driver`): in-process through the gateway's own call path,
or with ``--url`` against a deployed gateway (token from
``WRAPGATE_SYSTEM_TOKEN``). Every command exits 1 when the answer is a failure.
``new-plugin`` writes a ready-to-install connector distribution.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from . import __version__, catalog, config, driver, limits, logs, serialize
from .errors import ConfigurationError
from .plugins import Registry


def _settings(require_token: bool = True) -> config.Settings:
    try:
        settings = config.load(require_token=require_token)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    logs.configure(settings.log_level, "console")
    return settings


def _registry(settings: config.Settings) -> Registry:
    registry = Registry()
    try:
        registry.load_entry_points(allow=settings.plugins, strict=settings.strict_plugins)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    return registry


@click.group()
@click.version_option(__version__, prog_name="wrapgate")
def main() -> None:
    """wrapgate: one integrator.io Server stack for many wrapper connections."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", type=int, default=None, help="Worker processes (default: one per core).")
@click.option("--reload", is_flag=True, help="Restart workers when a source file changes (development only).")
def serve(host: str, port: int, workers: int | None, reload: bool) -> None:
    """Run the gateway under gunicorn, exactly as production runs it, with every installed connector."""
    _settings()  # a missing token or a bad file is refused here, in plain words
    from .server import run, summary

    click.echo(summary(), err=True)
    run(bind=f"{host}:{port}", workers=workers, reload=reload)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed connectors: name, version, package, functions, load errors."""
    registry = _registry(_settings(require_token=False))
    rows = registry.describe()
    if as_json:
        click.echo(serialize.dumps(catalog.catalog(registry)).decode())
        return
    if not rows:
        click.echo(
            "No connector installed. Install one with `pip install <package>`; it registers "
            "itself on the 'wrapgate' entry-point group."
        )
    for row in rows:
        head = f"{row['name']} {row['version'] or ''}".strip()
        package = f" ({row['package']})" if row["package"] else ""
        click.echo(f"{head}{package}")
        if row["error"]:
            click.echo(f"  FAILED TO LOAD: {row['error']}")
        else:
            click.echo("  functions: " + ", ".join(row["functions"]))
    for name in registry.extensions:
        click.echo(f"{name} (extension)")
    if registry.extensions:
        click.echo(
            "(an extension implements no wrapgate_ping/_export/_import/_functions: it can only wrap "
            "calls. A connector listed as an extension has no @hookimpl on its hooks, or its entry "
            "point names a module without them; see docs/authoring.md, 'When a plugin does not load'.)"
        )
    if any(row["error"] for row in rows):
        sys.exit(1)


@main.command()
@click.argument("wire_name")
@click.option(
    "--options",
    "options_file",
    type=click.File("rb"),
    required=True,
    help="JSON file with the call's options ('-' for standard input).",
)
@click.option("--connector-id", default=None, help="Call as this _connectorId instead of DIY.")
@click.option("--max-response-size", type=int, default=0, help="maxResponseSize of the call.")
def call(wire_name: str, options_file: Any, connector_id: str | None, max_response_size: int) -> None:
    """Run one function in-process (no HTTP) and print its JSON result or error."""
    from .access import new_request_id
    from .calls import Gateway

    settings = _settings(require_token=False)
    try:
        options = serialize.loads(options_file.read())
    except ValueError as exc:
        raise click.ClickException(f"--options is not valid JSON: {exc}") from None
    body: dict[str, Any] = {"function": wire_name, "options": options, "maxResponseSize": max_response_size}
    if connector_id:
        body["_connectorId"] = connector_id
    else:
        body["diy"] = True
    registry = _registry(settings)
    gateway = Gateway(settings, registry, limits.build(settings, registry.notify))
    answer = gateway.call(body, request_id=new_request_id())
    click.echo(answer.body.decode())
    if driver.failure(answer.status, serialize.loads(answer.body)) is not None:
        sys.exit(1)


# -- spec, check, read, write ------------------------------------------------

URL_OPTION = click.option(
    "--url",
    default=None,
    help="Run against this deployed gateway (token from WRAPGATE_SYSTEM_TOKEN) instead of in-process.",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
CONNECTION_OPTION = click.option(
    "--connection", "connection_file", type=click.File("rb"), required=True, help="JSON file: the connection."
)


def configuration_option(kind: str) -> Any:
    return click.option(
        "--configuration",
        "configuration_file",
        type=click.File("rb"),
        default=None,
        help=f"JSON file: the {kind}'s configuration.",
    )


def _token() -> str:
    tokens = [t.strip() for t in os.environ.get("WRAPGATE_SYSTEM_TOKEN", "").split(",") if t.strip()]
    if not tokens:
        raise click.ClickException("--url needs the gateway's system token in WRAPGATE_SYSTEM_TOKEN.")
    return tokens[0]


def _caller(url: str | None) -> driver.Caller:
    if url:
        return driver.over_http(url, _token())
    from .calls import Gateway

    settings = _settings(require_token=False)
    registry = _registry(settings)
    return driver.in_process(Gateway(settings, registry, limits.build(settings, registry.notify)))


def _load(file: Any, what: str) -> Any:
    try:
        return serialize.loads(file.read())
    except ValueError as exc:
        raise click.ClickException(f"{what} is not valid JSON: {exc}") from None


def _load_records(file: Any) -> list[Any]:
    """A JSON array, or JSON lines (what ``wrapgate read`` prints)."""
    text = file.read()
    try:
        value = serialize.loads(text)
    except ValueError:
        try:
            return [serialize.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise click.ClickException(f"--records is neither a JSON array nor JSON lines: {exc}") from None
    return value if isinstance(value, list) else [value]


def _connection(file: Any) -> dict[str, Any]:
    connection = _load(file, "--connection")
    if not isinstance(connection, dict):
        raise click.ClickException("--connection must hold a JSON object (the connection resource).")
    return connection


def _emit(value: Any, err: bool = False) -> None:
    click.echo(serialize.dumps(value).decode(), err=err)


@main.command()
@click.argument("name")
@URL_OPTION
@JSON_OPTION
def spec(name: str, url: str | None, as_json: bool) -> None:
    """A connector's functions and the JSON Schema of its connection and configurations."""
    if url:
        status, listing = driver.get_json(url.rstrip("/") + "/plugins", _token())
        if status != 200:
            raise click.ClickException(f"GET /plugins answered {status}: {driver.failure(status, listing)}")
        rows = {row["name"]: row for row in listing.get("connectors", [])}
    else:
        rows = {
            row["name"]: row
            for row in catalog.catalog(_registry(_settings(require_token=False)))["connectors"]
        }
    row = rows.get(name)
    if row is None:
        raise click.ClickException(f"no connector {name!r}; installed: {', '.join(sorted(rows)) or 'none'}")
    if row["error"]:
        raise click.ClickException(f"connector {name} failed to load: {row['error']}")
    if as_json:
        _emit(row)
        return
    click.echo(f"{name} {row['version'] or ''} ({row['package'] or 'not from a distribution'})")
    for section, schema in row["spec"]["connection"].items():
        click.echo(f"  connection.{section}: {_fields(schema)}")
    for wire, function in row["spec"]["functions"].items():
        line = f"  {wire} ({function['kind']})"
        if "configuration" in function:
            line += f" configuration: {_fields(function['configuration'])}"
        click.echo(line)


def _fields(schema: dict[str, Any] | None) -> str:
    if not schema:
        return "anything (no schema)"
    required = set(schema.get("required", ()))
    names = [f"{key}{'*' if key in required else ''}" for key in schema.get("properties", {})]
    return ", ".join(names) or "no fields"


@main.command()
@click.argument("wire_name")
@CONNECTION_OPTION
@URL_OPTION
@JSON_OPTION
def check(wire_name: str, connection_file: Any, url: str | None, as_json: bool) -> None:
    """Ping a connection (WIRE_NAME: connector.ping) and say plainly what is wrong."""
    if "." not in wire_name:
        wire_name = f"{wire_name}.ping"
    problem, answer = driver.check(_caller(url), wire_name, _connection(connection_file))
    advice = driver.hint(answer) if problem is not None else None
    if as_json:
        _emit(
            {
                "ok": problem is None,
                "function": wire_name,
                "problem": problem,
                "hint": advice,
                "answer": answer,
            }
        )
    elif problem is None:
        click.echo(f"ok: {wire_name} answered statusCode 200")
    else:
        click.echo(f"FAILED: {wire_name} answered {problem}")
        if advice:
            click.echo(f"  hint: {advice}")
    if problem is not None:
        sys.exit(1)


@main.command()
@click.argument("wire_name")
@CONNECTION_OPTION
@configuration_option("export")
@click.option(
    "--type",
    "export_type",
    type=click.Choice(["delta", "once", "test"]),
    default=None,
    help="Export type (default: all records).",
)
@click.option("--date-field", default=None, help="delta: the date field.")
@click.option(
    "--since", "since_ms", type=int, default=None, help="delta: lastExecutionTime, ms since the epoch."
)
@click.option("--boolean-field", default=None, help="once: the boolean field.")
@click.option("--limit", type=int, default=None, help="test: how many records.")
@click.option("--max-pages", type=int, default=10_000, show_default=True, help="Stop after this many pages.")
@URL_OPTION
@JSON_OPTION
def read(
    wire_name: str,
    connection_file: Any,
    configuration_file: Any,
    export_type: str | None,
    date_field: str | None,
    since_ms: int | None,
    boolean_field: str | None,
    limit: int | None,
    max_pages: int,
    url: str | None,
    as_json: bool,
) -> None:
    """Run an export as integrator.io does; print its records as JSON lines, then a summary on stderr."""
    options = driver.export_options(
        _connection(connection_file),
        _load(configuration_file, "--configuration") if configuration_file else None,
        export_type,
        date_field,
        since_ms,
        boolean_field,
        limit,
    )
    progress = sys.stderr.isatty()
    summary = driver.ReadSummary()
    for page in driver.read(_caller(url), wire_name, options, summary, max_pages=max_pages):
        for record in page["data"]:
            _emit(record)
        if progress:
            click.echo(f"\rpage {summary.pages}, {summary.records} records", err=True, nl=False)
    if progress:
        click.echo("", err=True)
    if as_json:
        _emit(summary.as_dict(), err=True)
    else:
        outcome = "ok" if summary.problem is None else f"FAILED: {summary.problem}"
        click.echo(
            f"{outcome}: {summary.pages} pages, {summary.records} records in {summary.seconds:.2f} s",
            err=True,
        )
        for error in summary.errors:
            click.echo(f"  error {error.get('code')}: {error.get('message')}", err=True)
    if summary.problem is not None:
        sys.exit(1)


@main.command()
@click.argument("wire_name")
@click.option(
    "--records", "records_file", type=click.File("rb"), required=True, help="JSON array or JSON lines."
)
@CONNECTION_OPTION
@configuration_option("import")
@click.option("--batch", type=click.IntRange(1), default=100, show_default=True, help="Records per call.")
@URL_OPTION
@JSON_OPTION
def write(
    wire_name: str,
    records_file: Any,
    connection_file: Any,
    configuration_file: Any,
    batch: int,
    url: str | None,
    as_json: bool,
) -> None:
    """Send records in batches to an import; print one outcome per record (JSON lines)."""
    records = _load_records(records_file)
    options = {
        "connection": _connection(connection_file),
        "configuration": _load(configuration_file, "--configuration") if configuration_file else None,
    }
    failed = 0
    for outcome in driver.write(_caller(url), wire_name, options, records, batch):
        failed += outcome.get("statusCode") != 200
        _emit(outcome)
    summary = {"ok": failed == 0, "records": len(records), "failed": failed}
    if as_json:
        _emit(summary, err=True)
    else:
        click.echo(f"{'ok' if not failed else 'FAILED'}: {failed} of {len(records)} records failed", err=True)
    if failed:
        sys.exit(1)


@main.command("new-plugin")
@click.argument("name")
@click.option(
    "--directory",
    "-d",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where to create wrapgate-NAME/.",
)
def new_plugin(name: str, directory: str) -> None:
    """Create wrapgate-NAME/: a connector distribution ready to pip install, with tests."""
    from .template import TemplateError, generate

    try:
        target = generate(name, directory)
    except TemplateError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {target}")
    click.echo(f"next: pip install -e '{target}' && pytest {target}")


if __name__ == "__main__":
    main()
