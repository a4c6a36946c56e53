"""Build a backend from its parameter block plus credentials (never parameters)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from belle_kedro.common.config import build
from belle_kedro.llm.base import ApiKind, LLMBackend, RetryPolicy


@dataclass(frozen=True)
class BackendConfig:
    """One ``llm``/``backend`` block of the parameters (every key is declared in base)."""

    backend: str  # openai | local
    api: ApiKind  # chat | completion
    model: str | None  # openai: the served model; local: a display name
    base_url: str | None  # openai: any OpenAI-compatible server; null = OpenAI
    api_key_env: str  # openai: the env variable read when credentials have no key
    timeout_s: float  # openai: per request
    max_retries: int
    backoff_base_s: float
    backoff_max_s: float
    model_path: str | None  # local: HF folder or .gguf file; null = the offline model
    allow_download: bool  # local: fetch a hub id when online
    num_threads: int | None  # local: torch CPU threads while generating

    @property
    def retry_policy(self) -> RetryPolicy:
        """How the runner retries this backend's retryable failures."""
        return RetryPolicy(
            max_retries=int(self.max_retries),
            backoff_base_s=float(self.backoff_base_s),
            backoff_max_s=float(self.backoff_max_s),
        )


def resolve_api_key(config: BackendConfig, credentials: Mapping[str, Any]) -> str:
    """The key from credentials (``api_key``), else from the env var ``api_key_env`` names."""
    key = credentials.get("api_key") or os.environ.get(config.api_key_env)
    if not key:
        raise ValueError(
            f"no API key for backend 'openai': set the environment variable "
            f"{config.api_key_env} or 'api_key' under the credentials section in "
            "conf/local/credentials.yml (servers without auth, such as Ollama, accept "
            "any non-empty string)"
        )
    return str(key)


def build_backend(
    params: Mapping[str, Any], credentials: Mapping[str, Any], where: str
) -> LLMBackend:
    """``openai`` (any OpenAI-compatible server) or ``local`` (in-process transformers).

    ``where`` is the dotted name of the block (``generate.llm``), for error messages.
    """
    if "api_key" in params:
        raise ValueError(
            f"an API key must not be a parameter ({where}.api_key): put it in "
            "conf/local/credentials.yml or in the environment variable named by "
            f"'{where}.api_key_env'"
        )
    config = build(BackendConfig, params, where)
    if config.backend == "openai":
        from belle_kedro.llm.openai_backend import OpenAIBackend

        if not config.model:
            raise ValueError(f"backend 'openai' needs a model ({where}.model)")
        return OpenAIBackend(
            model=config.model,
            api_key=resolve_api_key(config, credentials),
            api=config.api,
            base_url=config.base_url,
            timeout_s=float(config.timeout_s),
            retry_policy=config.retry_policy,
        )
    if config.backend == "local":
        from belle_kedro.llm.local_backend import LocalBackend

        return LocalBackend(
            model_path=config.model_path,
            api=config.api,
            model=config.model,
            allow_download=config.allow_download,
            num_threads=config.num_threads,
            retry_policy=config.retry_policy,
        )
    raise ValueError(
        f"unknown LLM backend {config.backend!r} ({where}.backend): use 'openai' or 'local'"
    )
