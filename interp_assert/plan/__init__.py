"""Step 3 of the pipeline: what the selected claims of a run need from each forward pass."""
