"""Typed settings of an LLM block (``generate.llm``, ``evaluate.judge.backend``).

A block names its backend and its transport, and holds one sub-block per backend with
only that backend's keys (the registry in :mod:`belle_kedro.llm.registry` says which
class each sub-block is)::

    backend: local          # a registered backend; only its sub-block is used
    api: completion         # chat | completion | batch (batch: a backend that offers it)
    model: SmolLM2-135M-Instruct
    local: {model_path: null, ...}
    openai: {base_url: null, ..., batch: {...}}

Parameters merge softly over conf/base, so base declares every backend's sub-block
with its defaults and an env only switches ``backend`` and names what it changes.
Every sub-block present is validated against its class, chosen or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from belle_kedro.common.config import (
    InvalidSetting,
    ParameterError,
    Settings,
    build,
    setting,
)
from belle_kedro.llm.base import RetryPolicy
from belle_kedro.llm.runner import RequestLimits, TokenPrices

Transport = Literal["chat", "completion", "batch"]


@dataclass(frozen=True)
class RetrySettings(Settings):
    """How the runner retries a backend's retryable failures (part of every backend)."""

    max_retries: int = setting("retries after the first attempt (429, 5xx, timeouts)")
    backoff_base_s: float = setting("retry n waits min(max, base * 2**(n-1)), jittered")
    backoff_max_s: float = setting("the longest wait between two attempts")

    @property
    def retry_policy(self) -> RetryPolicy:
        """The runner's view of these keys."""
        return RetryPolicy(self.max_retries, self.backoff_base_s, self.backoff_max_s)


@dataclass(frozen=True)
class BatchSettings(Settings):
    """The Batch API block (``<llm block>.openai.batch``), used when ``api: batch``."""

    body: Literal["chat", "completion"] = setting(
        "what each line carries: the endpoint and the prompt variant"
    )
    max_requests_per_file: int = setting("the API's limit: 50,000 requests per file")
    max_bytes_per_file: int = setting("the API's limit: 200 MB per input file")
    poll_interval_s: float = setting("first wait between polls, doubled while quiet")
    poll_max_interval_s: float = setting("the longest wait between polls")
    discount: float = setting("batch price = list price x discount (OpenAI: 0.5)")
    submit: bool = setting("false: write the input files only (vLLM's run_batch)")
    import_outputs: tuple[str, ...] = setting("Batch output files journaled first")

    @property
    def endpoint(self) -> str:
        """``/v1/chat/completions`` or ``/v1/completions``."""
        return {"chat": "/v1/chat/completions", "completion": "/v1/completions"}[
            self.body
        ]


@dataclass(frozen=True)
class PriceSettings(Settings):
    """USD per 1K tokens (``price_per_1k_tokens``)."""

    prompt: float = setting("USD per 1K prompt tokens")
    completion: float = setting("USD per 1K completion tokens")


@dataclass(frozen=True)
class RequestLimitSettings(Settings):
    """How hard a caller may press an API; shared by ``generate`` and ``evaluate.judge``."""

    max_in_flight: int = setting("concurrent requests")
    requests_per_minute: float | None = setting("optional requests/minute budget")
    tokens_per_minute: float | None = setting("optional tokens/minute budget")
    max_cost_usd: float | None = setting(
        "spend limit (USD) on everything in the journal; needs prices"
    )
    price_per_1k_tokens: PriceSettings = setting("list prices (cost and spend limit)")

    def check(self) -> None:
        """At least one request in flight."""
        if self.max_in_flight < 1:
            raise InvalidSetting("max_in_flight", "must be at least 1")

    @property
    def request_limits(self) -> RequestLimits:
        """The runner's limits (list prices; a batch client applies its discount)."""
        prices = self.price_per_1k_tokens
        return RequestLimits(
            max_in_flight=self.max_in_flight,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            max_cost_usd=self.max_cost_usd,
            prices=TokenPrices(prices.prompt, prices.completion),
        )


@dataclass(frozen=True)
class BackendChoice(Settings):
    """The keys every LLM block has, whichever backend it names."""

    backend: str = setting(
        "a registered backend (openai, local); its sub-block is used"
    )
    api: Transport = setting("chat | completion | batch (a backend that offers it)")
    model: str | None = setting("openai: the served model; local: a display name")


def _refuse_keys(values: Mapping[str, Any], where: str) -> None:
    """An API key is a secret: credentials or the environment, never a parameter."""
    for name, block in [("", values)] + [
        (f"{key}.", value)
        for key, value in values.items()
        if isinstance(value, Mapping)
    ]:
        if "api_key" in block:
            raise ParameterError(
                f"an API key must not be a parameter ({where}.{name}api_key): put it "
                "in conf/local/credentials.yml or in the environment variable named "
                f"by '{where}.{name}api_key_env'"
            )


@dataclass(frozen=True)
class LLMSettings:
    """One LLM block: the chosen backend and transport, and every backend sub-block."""

    backend: str
    api: Transport
    model: str | None
    blocks: Mapping[str, Settings]  # sub-block name -> its registered settings class

    @classmethod
    def from_parameters(cls, values: Any, where: str) -> LLMSettings:
        """Validate the common keys, the chosen backend and every sub-block present."""
        from belle_kedro.llm.registry import lookup, registered_names

        if not isinstance(values, Mapping):
            raise ParameterError(
                f"{where} must be a mapping of settings, got {values!r}"
            )
        _refuse_keys(values, where)
        common = list(BackendChoice.__dataclass_fields__)
        unknown = sorted(set(values) - set(common) - set(registered_names()))
        if unknown:
            raise ParameterError(
                f"unknown parameter(s) {', '.join(f'{where}.{k}' for k in unknown)}: "
                f"{where} takes {', '.join(common)} and a block per registered "
                f"backend ({', '.join(registered_names())})"
            )
        choice = build(
            BackendChoice, {k: v for k, v in values.items() if k in common}, where
        )
        blocks: dict[str, Settings] = {
            name: build(lookup(name).settings, block, f"{where}.{name}")
            for name, block in values.items()
            if name not in common
        }
        if choice.backend not in registered_names():
            raise ParameterError(
                f"{where}.backend: unknown LLM backend {choice.backend!r}; registered: "
                f"{', '.join(registered_names())}"
            )
        if choice.backend not in blocks:
            raise ParameterError(
                f"missing parameter(s) {where}.{choice.backend} (the settings of the "
                "chosen backend, declared in conf/base/parameters_<pipeline>.yml)"
            )
        if choice.api == "batch" and lookup(choice.backend).batch is None:
            offering = [n for n in registered_names() if lookup(n).batch is not None]
            raise ParameterError(
                f"{where}.api 'batch' needs a backend that offers a Batch API "
                f"({', '.join(offering)}), not {choice.backend!r}"
            )
        return cls(choice.backend, choice.api, choice.model, blocks)

    @property
    def chosen(self) -> Settings:
        """The settings of the backend this block names."""
        return self.blocks[self.backend]
