"""all-MiniLM-L6-v2's attention heads over a few English sentences (extra ``[hf]``)."""
