"""The split pipeline: a held-out set plus nested, seeded sample-size variants."""
