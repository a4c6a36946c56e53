"""LLM backends (OpenAI-compatible API, local transformers) and the resumable runner."""
