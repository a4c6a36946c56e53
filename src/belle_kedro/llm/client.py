"""The one request path: an LLM block in, a client that answers requests out.

:func:`open_client` reads the block's backend and transport once, for every caller
(generate, the evaluate judge): ``chat`` and ``completion`` go through the concurrent
runner, ``batch`` through the backend's Batch API at its discounted price. Callers
build requests in :attr:`LLMClient.prompt_api`'s form and call :meth:`LLMClient.collect`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from belle_kedro.llm.base import ApiKind, LLMBackend, LLMRequest, LLMResponse
from belle_kedro.llm.batch import NOT_SUBMITTED, BatchReport, collect_batch_responses
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.openai_backend import OpenAIBackend
from belle_kedro.llm.registry import lookup
from belle_kedro.llm.runner import (
    NOT_SENT_OVER_BUDGET,
    RequestLimits,
    RunProgress,
    TokenPrices,
    collect_responses,
)
from belle_kedro.llm.settings import BatchSettings, LLMSettings

# Held back by a setting the user chose (spend limit, batch.submit: false): not failures.
HELD_BACK = frozenset({NOT_SENT_OVER_BUDGET, NOT_SUBMITTED})


class LLMClient:
    """A backend behind its transport; ``collect`` answers requests, journaling each."""

    def __init__(self, backend: LLMBackend, batch: BatchSettings | None = None):
        if batch is not None and not isinstance(backend, OpenAIBackend):
            raise TypeError("the Batch API speaks the OpenAI wire format only")
        self.backend = backend
        self.batch = batch
        self.batch_report = BatchReport() if batch is not None else None

    @property
    def model(self) -> str:
        """The model that answers."""
        return self.backend.model

    @property
    def prompt_api(self) -> ApiKind:
        """The form requests are sent in: chat messages or one completion prompt."""
        return self.backend.api

    def prices(self, list_prices: TokenPrices) -> TokenPrices:
        """What this transport pays: list prices, times the discount for batches."""
        if self.batch is None:
            return list_prices
        return list_prices.scaled(self.batch.discount)

    async def collect(
        self,
        requests: Sequence[LLMRequest],
        journal: ResponseJournal,
        limits: RequestLimits,
        progress: str | RunProgress | None = None,
    ) -> dict[str, LLMResponse]:
        """Answers for every request id; only those not in ``journal`` are sent.

        ``limits`` carry list prices; the spend limit counts at :meth:`prices`.
        """
        limits = dataclasses.replace(limits, prices=self.prices(limits.prices))
        if self.batch is None or self.batch_report is None:
            return await collect_responses(
                self.backend, requests, journal, limits, progress
            )
        assert isinstance(self.backend, OpenAIBackend)  # checked in __init__
        bar = (
            RunProgress(progress, len(requests))
            if isinstance(progress, str)
            else progress
        )
        try:
            return await collect_batch_responses(
                self.backend,
                requests,
                journal,
                limits,
                settings=self.batch,
                report=self.batch_report,
                progress=bar,
            )
        finally:
            if isinstance(progress, str) and bar is not None:
                bar.close()

    def batch_summary(self) -> dict[str, Any] | None:
        """What the Batch API did (body, discount and counts), or None for chat/completion."""
        if self.batch is None or self.batch_report is None:
            return None
        return {
            "body": self.batch.body,
            "discount": self.batch.discount,
            **self.batch_report.as_dict(),
        }

    async def aclose(self) -> None:
        """Release the backend's connections (from the loop that opened them)."""
        await self.backend.aclose()


def open_client(
    settings: LLMSettings, credentials: Mapping[str, Any], where: str
) -> LLMClient:
    """The client for an LLM block: ``where`` is its dotted name, for error messages.

    ``api: batch`` opens the backend speaking the batch body's prompt API.
    """
    registered = lookup(settings.backend)
    if settings.api == "batch":
        assert registered.batch is not None  # LLMSettings refuses api: batch otherwise
        batch = registered.batch(settings.chosen)
        backend = registered.open(
            settings.chosen, settings.model, batch.body, credentials, where
        )
        return LLMClient(backend, batch)
    return LLMClient(
        registered.open(
            settings.chosen, settings.model, settings.api, credentials, where
        )
    )
