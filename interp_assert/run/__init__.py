"""The one runner: claim files and targets in, judged results out."""
