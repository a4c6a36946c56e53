"""The five stages, one package each: generate, clean, split, train, evaluate."""
