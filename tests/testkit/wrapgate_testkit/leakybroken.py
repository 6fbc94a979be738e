"""Connector ``leakybroken``: fails to import with a key from its environment and
a server path in the exception, as a misconfigured driver does."""

import os

raise RuntimeError(
    f"driver rejected key {os.environ.get('WRAPGATE_TEST_IMPORT_KEY', 'unset')} "
    f"in {os.path.abspath(__file__)}"
)
