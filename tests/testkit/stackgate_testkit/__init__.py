"""Connector plugins used by stackgate's own tests.

They are published on the real ``stackgate`` entry-point group by the
``testkit_site`` fixture (a ``.dist-info`` folder on PYTHONPATH), so the gateway
discovers them exactly as it discovers an installed package.
"""
