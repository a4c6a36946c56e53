"""Generate: ask an LLM for new tasks in BELLE's self-instruct format, then parse them."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pandas as pd

from belle_kedro.common.config import build
from belle_kedro.common.records import RECORD_COLUMNS
from belle_kedro.common.tracking import as_metrics
from belle_kedro.llm.base import LLMBackend, LLMRequest, LLMResponse
from belle_kedro.llm.batch import (
    NOT_SUBMITTED,
    BatchReport,
    BatchSettings,
    collect_batch_responses,
)
from belle_kedro.llm.factory import build_backend
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.openai_backend import OpenAIBackend
from belle_kedro.llm.runner import (
    NOT_SENT_OVER_BUDGET,
    RequestLimits,
    RunProgress,
    TokenPrices,
    collect_responses,
    run_sync,
    stored_responses,
)
from belle_kedro.pipelines.generate.self_instruct import (
    build_request,
    parse_answer,
    parse_tasks,
)

logger = logging.getLogger(__name__)

GENERATED_COLUMNS = [*RECORD_COLUMNS, "request_id", "model", "source"]
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
UNPARSABLE_EXAMPLES = 5
UNPARSABLE_EXAMPLE_CHARS = 300
HELD_BACK = frozenset({NOT_SENT_OVER_BUDGET, NOT_SUBMITTED})


def _sum_usage(responses: list[LLMResponse]) -> dict[str, int]:
    return {key: sum(int(r.usage.get(key, 0)) for r in responses) for key in USAGE_KEYS}


def _cost(usage: Mapping[str, int], prices: TokenPrices) -> float:
    return round(prices.cost(usage), 6)


# Sends one wave of planned requests and returns every answer (stored or new).
Collect = Callable[[list[LLMRequest], RunProgress], Awaitable[dict[str, LLMResponse]]]


def _collector(
    backend: LLMBackend,
    journal: ResponseJournal,
    limits: RequestLimits,
    batch: tuple[BatchSettings, BatchReport] | None,
) -> Collect:
    """The concurrent runner, or the Batch API when ``batch`` is given."""

    async def collect(
        requests: list[LLMRequest], progress: RunProgress
    ) -> dict[str, LLMResponse]:
        if batch is None:
            return await collect_responses(backend, requests, journal, limits, progress)
        assert isinstance(backend, OpenAIBackend)
        settings, report = batch
        return await collect_batch_responses(
            backend,
            requests,
            journal,
            limits,
            settings=settings,
            report=report,
            progress=progress,
        )

    return collect


async def _generate(
    backend: LLMBackend,
    seed_tasks: pd.DataFrame,
    prompt_templates: Mapping[str, Mapping[str, str]],
    journal: ResponseJournal,
    params: Mapping[str, Any],
    *,
    collect: Collect,
) -> tuple[list[str], dict[str, LLMResponse], set[str]]:
    """Issue request indices 0, 1, 2... until the answers hold enough tasks."""
    target = int(params["num_instructions_to_generate"])
    max_requests = int(params["max_requests"])
    num_tasks = int(params["tasks_per_request"])
    template = prompt_templates[backend.api]
    before = journal.done_ids()
    request_ids: list[str] = []
    responses: dict[str, LLMResponse] = {}
    parsed = 0

    def count_tasks(response: LLMResponse) -> int:
        return len(parse_tasks(response.text, response.finish_reason))

    progress = RunProgress(
        "generate", total=0, count_items=count_tasks, items_label="instructions"
    )
    try:
        while parsed < target and len(request_ids) < max_requests:
            answered = sum(1 for rid in request_ids if responses[rid].ok)
            # Expected tasks per answer: observed so far, else what the prompt asks for.
            per_answer = parsed / answered if answered and parsed else float(num_tasks)
            needed = math.ceil((target - parsed) / max(per_answer, 0.1))
            batch_size = max(1, min(needed, max_requests - len(request_ids)))
            start = len(request_ids)
            batch = [
                build_request(
                    seed_tasks,
                    index,
                    random_seed=int(params["random_seed"]),
                    few_shot_k=int(params["few_shot_k"]),
                    num_tasks=num_tasks,
                    template=template,
                    sampling=params["sampling"],
                    model=backend.model,
                    send_seed=bool(params["send_seed"]),
                )
                for index in range(start, start + batch_size)
            ]
            progress.add_total(len(batch))
            answers = await collect(batch, progress)
            request_ids += [request.request_id for request in batch]
            responses.update(answers)
            parsed = sum(count_tasks(r) for r in responses.values() if r.ok)
            # Held back (spend limit) or written offline: asking for more would not help.
            if any(r.error in HELD_BACK for r in answers.values()):
                break
    finally:
        progress.close()
        await backend.aclose()
    return request_ids, responses, before


def request_responses(
    seed_tasks: pd.DataFrame,
    generation_prompt: dict[str, dict[str, str]],
    raw_responses: ResponseJournal,
    generator_credentials: Mapping[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Send the planned requests (skipping stored answers); every answer is journaled.

    Returns the run summary: this plan's request ids in index order, counts, token
    usage and a cost estimate. Answers are on disk before this returns, so a killed
    run loses nothing it received and a rerun continues where it stopped.
    """
    started = time.time()
    limits = RequestLimits.of(params)
    llm_params = dict(params["llm"])
    batch: tuple[BatchSettings, BatchReport] | None = None
    if llm_params["api"] == "batch":
        if llm_params["backend"] != "openai":
            raise ValueError(
                "generate.llm.api 'batch' is the OpenAI Batch API: it needs "
                f"generate.llm.backend 'openai', not {llm_params['backend']!r}"
            )
        settings = build(BatchSettings, params["batch"], "generate.batch")
        batch = (settings, BatchReport())
        llm_params["api"] = settings.body  # the body each batch line carries
        limits = dataclasses.replace(
            limits, prices=limits.prices.scaled(settings.discount)
        )
    backend = build_backend(llm_params, generator_credentials, "generate.llm")
    collect = _collector(backend, raw_responses, limits, batch)
    request_ids, responses, stored_before = run_sync(
        _generate(
            backend,
            seed_tasks,
            generation_prompt,
            raw_responses,
            params,
            collect=collect,
        )
    )
    not_sent = {
        rid for rid in request_ids if responses[rid].error == NOT_SENT_OVER_BUDGET
    }
    answers = [responses[rid] for rid in request_ids if rid not in not_sent]
    ok = [r for r in answers if r.ok]
    new_ok = [r for r in ok if r.request_id not in stored_before]
    parsed_answers = [parse_answer(r.text, r.finish_reason) for r in ok]
    parsed = sum(len(answer.tasks) for answer in parsed_answers)
    unparsable = [block for answer in parsed_answers for block in answer.unparsable]
    usage = _sum_usage(ok)
    usage_this_run = _sum_usage(new_ok)
    prices = limits.prices
    target = int(params["num_instructions_to_generate"])
    summary = {
        "backend": params["llm"]["backend"],
        "api": params["llm"]["api"],  # chat | completion | batch
        "model": backend.model,
        "random_seed": int(params["random_seed"]),
        "instructions_target": target,
        "instructions_parsed": parsed,
        "target_reached": parsed >= target,
        "requests_planned": len(request_ids),
        "stopped_by_budget": bool(not_sent),
        "requests_not_sent_budget": len(not_sent),
        "max_cost_usd": params["max_cost_usd"],
        "responses_ok": len(ok),
        "responses_failed": len(answers) - len(ok),
        "responses_truncated": sum(1 for r in ok if r.finish_reason == "length"),
        "blocks_unparsable": len(unparsable),
        # A few labelled blocks that gave no task, cut short: enough to fix a prompt.
        "unparsable_examples": [
            block[:UNPARSABLE_EXAMPLE_CHARS]
            for block in unparsable[:UNPARSABLE_EXAMPLES]
        ],
        "responses_from_journal": len(ok) - len(new_ok),
        "responses_new": len(new_ok),
        "retries": sum(
            max(0, r.attempts - 1) for r in answers if r.request_id not in stored_before
        ),
        "usage": usage,
        "usage_this_run": usage_this_run,
        "cost_estimate": _cost(usage, prices),
        "cost_estimate_this_run": _cost(usage_this_run, prices),
        # The prices the cost was counted at (batch: list prices x batch.discount).
        "price_per_1k_tokens": {
            "prompt": prices.prompt_per_1k,
            "completion": prices.completion_per_1k,
        },
        # What the Batch API did this run (api: batch), else null.
        "batch": None
        if batch is None
        else {
            "body": batch[0].body,
            "discount": batch[0].discount,
            **batch[1].as_dict(),
        },
        "wall_s": round(time.time() - started, 3),
        "request_ids": request_ids,
    }
    if summary["stopped_by_budget"]:
        logger.warning(
            "generate: stopped by the spend limit (max_cost_usd=%s) at %d of %d "
            "instructions; %d planned request(s) not sent. A rerun with a larger "
            "max_cost_usd continues from here.",
            params["max_cost_usd"],
            parsed,
            target,
            len(not_sent),
        )
    elif not summary["target_reached"]:
        logger.warning(
            "generate: %d of %d instructions after %d requests (max_requests reached)",
            parsed,
            target,
            len(request_ids),
        )
    return summary


def parse_responses(
    raw_responses: ResponseJournal,
    generation_summary: dict[str, Any],
    params: dict[str, Any],
) -> pd.DataFrame:
    """The first ``num_instructions_to_generate`` tasks, in request-index order.

    Reads the journal, not the node's memory, so a resumed run yields exactly what an
    uninterrupted one would. Unparseable text is skipped, never raised on.
    """
    request_ids = list(generation_summary["request_ids"])
    stored = stored_responses(raw_responses.records(), set(request_ids))
    rows: list[dict[str, str]] = []
    for request_id in request_ids:
        response = stored.get(request_id)
        if response is None or not response.ok:
            continue
        for task in parse_tasks(response.text, response.finish_reason):
            rows.append(
                {
                    **task,
                    "request_id": request_id,
                    "model": response.model,
                    "source": "generate",
                }
            )
    rows = rows[: int(params["num_instructions_to_generate"])]
    return pd.DataFrame(rows, columns=GENERATED_COLUMNS).astype(str)


def generation_metrics(
    generation_summary: dict[str, Any],
) -> dict[str, dict[str, float]]:
    """Counts, token usage and cost as MLflow metrics (kedro-mlflow metrics format)."""
    names = (
        "instructions_parsed",
        "requests_planned",
        "responses_ok",
        "responses_failed",
        "responses_truncated",
        "blocks_unparsable",
        "responses_new",
        "requests_not_sent_budget",
        "retries",
        "cost_estimate",
    )
    metrics = {name: generation_summary[name] for name in names}
    metrics |= {f"usage.{k}": v for k, v in generation_summary["usage"].items()}
    metrics |= {
        f"usage_this_run.{k}": v
        for k, v in generation_summary["usage_this_run"].items()
    }
    return as_metrics(metrics)
