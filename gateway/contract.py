"""Whether a plugin was built for the contract this core serves.

Two declarations are checked when a plugin loads, so that a plugin built for
another contract fails loudly, by name and with a reason, instead of strangely
at its first call:

* ``WRAPGATE_CONTRACT``, an integer attribute of the plugin object (its module):
  the :data:`gateway.hookspecs.CONTRACT_VERSION` it was written against.
* the ``wrapgate`` requirement in its distribution's metadata
  (``install_requires = wrapgate>=0.2,<0.3``): pip checks it at install time,
  but not when the core is upgraded later or installed with ``--no-deps``, so
  it is checked again against the running core.

Policy: the contract version changes only with a release whose minor version
changes while wrapgate is 0.x (its major version from 1.0 on); such a release
is listed under "Changed (contract)" in the CHANGELOG. A plugin pins
``wrapgate>=<first release of its contract>,<<next minor>``.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .hookspecs import CONTRACT_VERSION, PROJECT

#: Contract versions this core serves.
SERVED = frozenset({CONTRACT_VERSION})


def core_version() -> str | None:
    try:
        return importlib.metadata.version(PROJECT)
    except importlib.metadata.PackageNotFoundError:  # a source tree that is not installed
        return None


def incompatibility(plugin: Any, dist: Any = None, running: str | None = None) -> str | None:
    """Why ``plugin`` (from distribution ``dist``) cannot run on this core, or None."""
    declared = getattr(plugin, "WRAPGATE_CONTRACT", None)
    if declared is not None and declared not in SERVED:
        served = ", ".join(str(v) for v in sorted(SERVED))
        return (
            f"built for plugin contract {declared!r}, but this wrapgate serves contract {served}: "
            "install a release of the plugin made for this contract, or a wrapgate that serves its own"
        )
    running = running or core_version()
    if dist is None or running is None:
        return None
    try:
        version = Version(running)
    except InvalidVersion:
        return None
    for line in dist.requires or ():
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(req.name) != PROJECT or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            return (
                f"requires {PROJECT}{req.specifier} (its distribution's metadata), but {PROJECT} "
                f"{running} is running: install a release of the plugin made for {PROJECT} {running}"
            )
    return None
