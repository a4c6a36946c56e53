"""Calling the runner from synchronous tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from belle_kedro.llm.base import LLMRequest, LLMResponse
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.runner import RequestLimits, collect_responses, run_sync


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
