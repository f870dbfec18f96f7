"""Old import paths of the model adapters, kept for one release.

The adapters now live in :mod:`interp_assert.adapters`; the pytest plugin in
:mod:`interp_assert.drivers.pytest_plugin`. Importing this package imports nothing heavy.
"""
