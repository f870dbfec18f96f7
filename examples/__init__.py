"""Bundled example models for interp-assert."""
