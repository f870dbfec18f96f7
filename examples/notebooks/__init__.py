"""The five user notebooks rewritten as claim files, and the numbers that check them."""
