"""Opening backends from the declared YAML and calling the runner from synchronous tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from belle_kedro.common.config import build
from belle_kedro.llm.base import ApiKind, LLMBackend, LLMRequest, LLMResponse
from belle_kedro.llm.client import open_client
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.runner import RequestLimits, collect_responses, run_sync
from belle_kedro.llm.settings import LLMSettings
from tests.support.project import REPO_ROOT, declared, merged

FAST_RETRIES = {"max_retries": 4, "backoff_base_s": 0.01, "backoff_max_s": 0.05}


def llm_settings(**changes: Any) -> LLMSettings:
    """The declared ``generate.llm`` block with nested ``changes``, built."""
    return build(LLMSettings, declared("generate", "llm", **changes), "generate.llm")


def local_backend(api: ApiKind) -> LLMBackend:
    """The offline default backend (SmolLM2 from the wheel) speaking ``api``."""
    return open_client(llm_settings(api=api), {}, "generate.llm").backend


def openai_backend(base_url: str, api: ApiKind = "chat", **openai: Any) -> LLMBackend:
    """An ``openai`` backend on ``base_url`` (model ``fake``, fast retries unless given)."""
    settings = llm_settings(
        backend="openai",
        api=api,
        model="fake",
        openai={"base_url": base_url, **FAST_RETRIES, **openai},
    )
    return open_client(settings, {"api_key": "test-key"}, "test.llm").backend


def collect(
    backend: Any,
    requests: Sequence[LLMRequest],
    journal: ResponseJournal,
    *,
    max_in_flight: int,
    requests_per_minute: float | None = None,
    tokens_per_minute: float | None = None,
    progress: Any = None,
) -> dict[str, LLMResponse]:
    """``collect_responses`` run to completion, with the limits given by keyword."""
    limits = RequestLimits(max_in_flight, requests_per_minute, tokens_per_minute)
    return run_sync(collect_responses(backend, requests, journal, limits, progress))


def judge_templates() -> dict[str, Callable[[], Any]]:
    """The ``judge_templates`` partitions, loaded as the catalog entry loads them."""
    from kedro_datasets.partitions import PartitionedDataset

    return PartitionedDataset(
        path=str(REPO_ROOT / "conf" / "base" / "prompts" / "judge"),
        dataset="yaml.YAMLDataset",
        filename_suffix=".yml",
    ).load()


def loopback_judge(base_url: str, api: str = "chat", **changes: Any) -> dict[str, Any]:
    """The declared ``evaluate.judge`` block, on, judging through a loopback server."""
    return merged(
        declared(
            "evaluate",
            "judge",
            enabled=True,
            backend={
                "backend": "openai",
                "api": api,
                "model": "loopback-judge",
                "openai": {
                    "base_url": base_url,
                    "max_retries": 0,
                    "batch": {"poll_interval_s": 0.02, "poll_max_interval_s": 0.1},
                },
            },
        ),
        changes,
    )
