"""The ``wrapgate`` command: serve, list plugins, call a function in-process."""

from __future__ import annotations

import sys
from typing import Any

import click

from . import __version__, config, limits, logs, serialize
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
        click.echo(serialize.dumps({"connectors": rows, "extensions": registry.extensions}).decode())
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
    from .calls import Gateway
    from .routes import new_request_id

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
    gateway = Gateway(settings, _registry(settings), limits.build(settings))
    answer = gateway.call(body, request_id=new_request_id())
    click.echo(answer.body.decode())
    if answer.status != 200:
        sys.exit(1)


if __name__ == "__main__":
    main()
