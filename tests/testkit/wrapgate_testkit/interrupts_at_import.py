"""A plugin whose import raises a ``BaseException`` that is no ``Exception``."""

raise KeyboardInterrupt
