"""Step 7 of the pipeline: text, JSON, documents, baselines, plots and trajectories."""
