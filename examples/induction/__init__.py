"""Two-layer attention-only induction-head example model."""
