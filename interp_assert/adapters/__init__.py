"""Model adapters (TransformerLens, Hugging Face): loaders that give claims hook points."""
