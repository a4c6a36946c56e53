"""Self-instruct generation of Chinese instruction data (BELLE's first stage)."""
