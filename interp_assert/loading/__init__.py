"""Step 2 of the pipeline: claim files, datasets, checkpoints and subjects, read from disk."""
