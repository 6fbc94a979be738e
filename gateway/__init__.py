"""wrapgate: one integrator.io Server stack for many wrapper connections.

Connector authors need only :data:`hookimpl` (and :mod:`gateway.errors`);
the contract is :mod:`gateway.hookspecs`.
"""

from importlib.metadata import PackageNotFoundError, version

from .hookspecs import CONTRACT_VERSION, hookimpl

try:
    __version__ = version("wrapgate")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["CONTRACT_VERSION", "__version__", "hookimpl"]
