"""clean: BELLE's rule filters and Alpaca-style near-duplicate removal."""
