"""Step 6 of the pipeline: one verdict per claim and target, decided in one place."""
