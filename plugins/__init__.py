"""Integrations of interp-assert: the pytest plugin and adapters for model families.

Installed as the package ``interp_assert_plugins``. Importing it imports nothing heavy.
"""
