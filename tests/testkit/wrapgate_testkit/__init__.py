"""Connector plugins used by wrapgate's own tests.

They are published on the real ``wrapgate`` entry-point group by the
``testkit_site`` fixture (a ``.dist-info`` folder on PYTHONPATH), so the gateway
discovers them exactly as it discovers an installed package.
"""
