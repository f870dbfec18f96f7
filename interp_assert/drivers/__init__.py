"""Thin drivers over the runner: the pytest plugin, the command line and the Python API.

Nothing here is imported at package import: the pytest plugin must stay light.
"""
