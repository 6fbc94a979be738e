"""``wrapgate new-plugin NAME``: a connector distribution, rendered from ``plugin_template/``.

Every ``*.j2`` file of the template is rendered with Jinja2 (the suffix
dropped); ``__module__`` in a path becomes the import package's name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2

from . import __version__
from .hookspecs import CONTRACT_VERSION

TEMPLATE = Path(__file__).parent / "plugin_template"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class TemplateError(Exception):
    """The plugin cannot be generated; the message says why."""


def contract_pin(version: str = __version__) -> str:
    """The requirement on the core a new plugin declares: this contract, up to
    the next release that may break it (the next minor while 0.x, else the next major)."""
    match = re.match(r"^(\d+)\.(\d+)", version)
    major, minor = (int(match.group(1)), int(match.group(2))) if match else (0, 1)
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"wrapgate>={major}.{minor},<{upper}"


def generate(name: str, directory: str | Path = ".") -> Path:
    """Write ``<directory>/wrapgate-<name>/`` and return its path."""
    if not _NAME.match(name):
        raise TemplateError(
            f"{name!r} is not a connector name: lower-case letters, digits and _, starting with a "
            "letter (it is the prefix of every wire name, e.g. acme.export)"
        )
    target = Path(directory) / f"wrapgate-{name}"
    if target.exists():
        raise TemplateError(f"{target} exists already; choose another --directory or remove it")
    values: dict[str, Any] = {
        "name": name,
        "module": f"wrapgate_{name}",
        "dist": f"wrapgate-{name}",
        "contract": contract_pin(),
        "contract_version": CONTRACT_VERSION,
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # source files, not HTML
    )
    for source in sorted(TEMPLATE.rglob("*.j2")):
        relative = source.relative_to(TEMPLATE)
        out = target / str(relative.with_suffix("")).replace("__module__", str(values["module"]))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(env.get_template(relative.as_posix()).render(values))
    return target
