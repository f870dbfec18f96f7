"""Step 4 of the pipeline: quantities, expressions and planned forward passes."""
