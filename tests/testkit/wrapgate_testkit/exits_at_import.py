"""A plugin whose import ends the process (``os._exit``), as a careless one might."""

import os

os._exit(3)
