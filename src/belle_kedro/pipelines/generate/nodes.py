"""Generate: ask an LLM for new tasks in BELLE's self-instruct format, then parse them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from belle_kedro.common.config import build
from belle_kedro.common.records import RECORD_COLUMNS
from belle_kedro.common.tracking import as_metrics
from belle_kedro.llm.client import open_client
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.runner import run_sync, stored_responses
from belle_kedro.pipelines.generate.requests import generate
from belle_kedro.pipelines.generate.self_instruct import parse_tasks
from belle_kedro.pipelines.generate.settings import GenerateSettings
from belle_kedro.pipelines.generate.summary import check_complete, summarize

GENERATED_COLUMNS = [*RECORD_COLUMNS, "request_id", "model", "source"]


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
    settings = build(GenerateSettings, params, "generate")
    client = open_client(settings.llm, generator_credentials, "generate.llm")
    generation = run_sync(
        generate(client, seed_tasks, generation_prompt, raw_responses, settings)
    )
    summary = summarize(generation, client, settings, time.time() - started)
    summary.log_shortfall()
    return summary.as_record()


def parse_responses(
    raw_responses: ResponseJournal,
    generation_summary: dict[str, Any],
    params: dict[str, Any],
) -> pd.DataFrame:
    """The first ``num_instructions_to_generate`` tasks, in request-index order.

    Reads the journal, not the node's memory, so a resumed run yields exactly what an
    uninterrupted one would. Unparseable text is skipped, never raised on. A run
    that ended short for a reason nobody chose (failed or expired requests) stops here,
    after its summary is saved, with :class:`~.summary.IncompleteRun`.
    """
    check_complete(generation_summary)
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
    rows = rows[
        : build(GenerateSettings, params, "generate").num_instructions_to_generate
    ]
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
