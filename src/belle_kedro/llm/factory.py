"""Build a backend from a config mapping (parameters) plus credentials (never parameters)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from belle_kedro.llm.base import LLMBackend, RetryPolicy

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


def _retry_policy(config: Mapping[str, Any], default_retries: int) -> RetryPolicy:
    return RetryPolicy(
        max_retries=int(config.get("max_retries", default_retries)),
        backoff_base_s=float(config.get("backoff_base_s", 1.0)),
        backoff_max_s=float(config.get("backoff_max_s", 60.0)),
    )


def resolve_api_key(
    config: Mapping[str, Any], credentials: Mapping[str, Any] | None
) -> str:
    """The key from credentials (``api_key``), else from the env var ``api_key_env`` names."""
    if "api_key" in config:
        raise ValueError(
            "an API key must not be a parameter: put it in conf/local/credentials.yml or in "
            f"the environment variable named by 'api_key_env' (default {DEFAULT_API_KEY_ENV})"
        )
    key = (credentials or {}).get("api_key")
    env_name = str(config.get("api_key_env") or DEFAULT_API_KEY_ENV)
    key = key or os.environ.get(env_name)
    if not key:
        raise ValueError(
            f"no API key for backend 'openai': set the environment variable {env_name} or "
            "'api_key' under the credentials section in conf/local/credentials.yml "
            "(servers without auth, such as Ollama, accept any non-empty string)"
        )
    return str(key)


def build_backend(
    config: Mapping[str, Any], credentials: Mapping[str, Any] | None = None
) -> LLMBackend:
    """``openai`` (any OpenAI-compatible server) or ``local`` (in-process transformers)."""
    kind = str(config.get("backend", "local"))
    api = str(config.get("api", "chat"))
    if kind == "openai":
        from belle_kedro.llm.openai_backend import OpenAIBackend

        if not config.get("model"):
            raise ValueError("backend 'openai' needs a 'model'")
        return OpenAIBackend(
            model=str(config["model"]),
            api_key=resolve_api_key(config, credentials),
            api=api,  # type: ignore[arg-type]
            base_url=config.get("base_url") or None,
            timeout_s=float(config.get("timeout_s", 60.0)),
            retry_policy=_retry_policy(config, default_retries=6),
        )
    if kind == "local":
        from belle_kedro.llm.local_backend import LocalBackend

        return LocalBackend(
            model_path=config.get("model_path") or None,
            api=api,  # type: ignore[arg-type]
            model=config.get("model") or None,
            allow_download=bool(config.get("allow_download", False)),
            num_threads=config.get("num_threads") or None,
            retry_policy=_retry_policy(config, default_retries=0),
        )
    raise ValueError(f"unknown LLM backend {kind!r}: use 'openai' or 'local'")
