"""Multi-digit addition example model."""
