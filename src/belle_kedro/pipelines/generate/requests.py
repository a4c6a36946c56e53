"""The adaptive request loop: ask for more answers until they hold enough tasks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from belle_kedro.llm.base import LLMResponse
from belle_kedro.llm.client import HELD_BACK, LLMClient
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.runner import RunProgress
from belle_kedro.pipelines.generate.self_instruct import build_request, parse_tasks
from belle_kedro.pipelines.generate.settings import GenerateSettings


@dataclass(frozen=True)
class Generation:
    """A run's requests in index order, every answer, and the ids stored before it."""

    request_ids: list[str]
    responses: dict[str, LLMResponse]
    stored_before: set[str]


def count_tasks(response: LLMResponse) -> int:
    """How many tasks an answer yields."""
    return len(parse_tasks(response.text, response.finish_reason))


def next_wave_size(
    settings: GenerateSettings, parsed: int, answered: int, sent: int
) -> int:
    """Requests to plan next: enough for the target at the tasks per answer seen so far."""
    # Expected tasks per answer: observed so far, else what the prompt asks for.
    per_answer = (
        parsed / answered if answered and parsed else float(settings.tasks_per_request)
    )
    needed = math.ceil(
        (settings.num_instructions_to_generate - parsed) / max(per_answer, 0.1)
    )
    return max(1, min(needed, settings.max_requests - sent))


async def generate(
    client: LLMClient,
    seed_tasks: pd.DataFrame,
    prompt_templates: Mapping[str, Mapping[str, str]],
    journal: ResponseJournal,
    settings: GenerateSettings,
) -> Generation:
    """Issue request indices 0, 1, 2... until the answers hold enough tasks."""
    template = prompt_templates[client.prompt_api]
    limits = settings.request_limits
    generation = Generation([], {}, journal.done_ids())
    parsed = 0
    progress = RunProgress(
        "generate", total=0, count_items=count_tasks, items_label="instructions"
    )
    try:
        while (
            parsed < settings.num_instructions_to_generate
            and len(generation.request_ids) < settings.max_requests
        ):
            start = len(generation.request_ids)
            answered = sum(
                1 for rid in generation.request_ids if generation.responses[rid].ok
            )
            wave = [
                build_request(
                    seed_tasks,
                    index,
                    random_seed=settings.random_seed,
                    few_shot_k=settings.few_shot_k,
                    num_tasks=settings.tasks_per_request,
                    template=template,
                    sampling=settings.sampling,
                    model=client.model,
                    send_seed=settings.send_seed,
                )
                for index in range(
                    start, start + next_wave_size(settings, parsed, answered, start)
                )
            ]
            progress.add_total(len(wave))
            answers = await client.collect(wave, journal, limits, progress)
            generation.request_ids.extend(request.request_id for request in wave)
            generation.responses.update(answers)
            parsed = sum(count_tasks(r) for r in generation.responses.values() if r.ok)
            # Held back: asking for more would not help.
            if any(r.error in HELD_BACK for r in answers.values()):
                break
    finally:
        progress.close()
        await client.aclose()
    return generation
