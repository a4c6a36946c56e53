"""The generation summary: what a run asked, got, parsed and paid (``generation_summary``)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from belle_kedro.llm.base import (
    RESUME_HINT,
    IncompleteRun,
    LLMResponse,
    failure_reason,
)
from belle_kedro.llm.batch import NOT_SUBMITTED
from belle_kedro.llm.client import LLMClient
from belle_kedro.llm.runner import NOT_SENT_OVER_BUDGET, TokenPrices
from belle_kedro.pipelines.generate.requests import Generation
from belle_kedro.pipelines.generate.self_instruct import parse_answer
from belle_kedro.pipelines.generate.settings import GenerateSettings

logger = logging.getLogger(__name__)

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
UNPARSABLE_EXAMPLES = 5
UNPARSABLE_EXAMPLE_CHARS = 300
# Shortfall reasons a user chose by a setting; any other ends the run non-zero.
CHOSEN_REASONS = ("spend limit", "max_requests", "batch.submit")


def sum_usage(responses: Sequence[LLMResponse]) -> dict[str, int]:
    """Token usage summed over ``responses``."""
    return {key: sum(int(r.usage.get(key, 0)) for r in responses) for key in USAGE_KEYS}


@dataclass(frozen=True)
class GenerationSummary:
    """One run, in the JSON keys the catalog's ``generation_summary`` has always had."""

    backend: str
    api: str  # chat | completion | batch
    model: str
    random_seed: int
    instructions_target: int
    instructions_parsed: int
    target_reached: bool
    requests_planned: int
    stopped_by_budget: bool
    requests_not_sent_budget: int
    max_cost_usd: float | None
    responses_ok: int
    responses_failed: int
    responses_truncated: int
    blocks_unparsable: int
    # A few labelled blocks that gave no task, cut short: enough to fix a prompt.
    unparsable_examples: list[str]
    responses_from_journal: int
    responses_new: int
    retries: int
    usage: dict[str, int]
    usage_this_run: dict[str, int]
    cost_estimate: float
    cost_estimate_this_run: float
    # The prices the cost was counted at (batch: list prices x batch.discount).
    price_per_1k_tokens: dict[str, float]
    # What the Batch API did this run (api: batch), else null.
    batch: dict[str, Any] | None
    # Why the run ended below its target (empty when it reached it); whether a
    # setting the user chose explains all of it (else the run ends non-zero).
    shortfall: list[str]
    shortfall_chosen: bool
    wall_s: float
    request_ids: list[str]

    def as_record(self) -> dict[str, Any]:
        """The JSON-ready dict the catalog saves."""
        return dataclasses.asdict(self)

    def closing_line(self) -> str:
        """``generate: 380 of 400 instructions after 40 requests: <reasons>``."""
        line = (
            f"generate: {self.instructions_parsed} of {self.instructions_target} "
            f"instructions after {self.requests_planned} requests"
        )
        return f"{line}: {'; '.join(self.shortfall)}" if self.shortfall else line

    def log_shortfall(self) -> None:
        """Warn when the run stopped short of its target, and say why."""
        if self.shortfall:
            logger.warning("%s", self.closing_line())


def check_complete(summary: dict[str, Any]) -> None:
    """Raise :class:`IncompleteRun` when a saved summary's shortfall is nobody's choice."""
    if summary["target_reached"] or summary["shortfall_chosen"]:
        return
    raise IncompleteRun(
        f"generate: {summary['instructions_parsed']} of "
        f"{summary['instructions_target']} instructions: "
        f"{'; '.join(summary['shortfall'])}. {RESUME_HINT}"
    )


def shortfall_reasons(
    answers: Sequence[LLMResponse],
    batch: dict[str, Any] | None,
    settings: GenerateSettings,
    *,
    not_sent: int,
    planned: int,
) -> list[str]:
    """Every reason a run ended below its target, most serious first."""
    failed = [r for r in answers if not r.ok and r.error != NOT_SUBMITTED]
    reasons = [failure_reason(failed)] if failed else []
    expired = (batch or {}).get("batch_states", {}).get("expired", 0)
    if failed and expired:
        reasons.append(f"{expired} batch(es) expired")
    if not_sent:
        reasons.append(
            f"spend limit (max_cost_usd={settings.max_cost_usd}): {not_sent} planned "
            "request(s) not sent; a rerun with a larger max_cost_usd continues"
        )
    offline = sum(1 for r in answers if r.error == NOT_SUBMITTED)
    if offline:
        reasons.append(
            f"batch.submit is false: {offline} request(s) written to input files"
        )
    if planned >= settings.max_requests:
        reasons.append(f"max_requests ({settings.max_requests}) reached")
    return reasons


def summarize(
    generation: Generation,
    client: LLMClient,
    settings: GenerateSettings,
    wall_s: float,
) -> GenerationSummary:
    """Counts, token usage and cost of ``generation``, the requests in index order."""
    request_ids, responses = generation.request_ids, generation.responses
    not_sent = {
        rid for rid in request_ids if responses[rid].error == NOT_SENT_OVER_BUDGET
    }
    answers = [responses[rid] for rid in request_ids if rid not in not_sent]
    ok = [r for r in answers if r.ok]
    new_ok = [r for r in ok if r.request_id not in generation.stored_before]
    parsed_answers = [parse_answer(r.text, r.finish_reason) for r in ok]
    parsed = sum(len(answer.tasks) for answer in parsed_answers)
    unparsable = [block for answer in parsed_answers for block in answer.unparsable]
    usage, usage_this_run = sum_usage(ok), sum_usage(new_ok)
    prices: TokenPrices = client.prices(settings.request_limits.prices)
    target = settings.num_instructions_to_generate
    batch = client.batch_summary()
    shortfall = (
        []
        if parsed >= target
        else shortfall_reasons(
            answers, batch, settings, not_sent=len(not_sent), planned=len(request_ids)
        )
    )
    return GenerationSummary(
        backend=settings.llm.backend,
        api=settings.llm.api,
        model=client.model,
        random_seed=settings.random_seed,
        instructions_target=target,
        instructions_parsed=parsed,
        target_reached=parsed >= target,
        requests_planned=len(request_ids),
        stopped_by_budget=bool(not_sent),
        requests_not_sent_budget=len(not_sent),
        max_cost_usd=settings.max_cost_usd,
        responses_ok=len(ok),
        responses_failed=len(answers) - len(ok),
        responses_truncated=sum(1 for r in ok if r.finish_reason == "length"),
        blocks_unparsable=len(unparsable),
        unparsable_examples=[
            block[:UNPARSABLE_EXAMPLE_CHARS]
            for block in unparsable[:UNPARSABLE_EXAMPLES]
        ],
        responses_from_journal=len(ok) - len(new_ok),
        responses_new=len(new_ok),
        retries=sum(
            max(0, r.attempts - 1)
            for r in answers
            if r.request_id not in generation.stored_before
        ),
        usage=usage,
        usage_this_run=usage_this_run,
        cost_estimate=round(prices.cost(usage), 6),
        cost_estimate_this_run=round(prices.cost(usage_this_run), 6),
        price_per_1k_tokens={
            "prompt": prices.prompt_per_1k,
            "completion": prices.completion_per_1k,
        },
        batch=batch,
        shortfall=shortfall,
        shortfall_chosen=all(r.startswith(CHOSEN_REASONS) for r in shortfall),
        wall_s=round(wall_s, 3),
        request_ids=request_ids,
    )
