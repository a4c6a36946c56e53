"""The spend limit: spent plus the worst case in flight never passes ``max_cost_usd``."""

from __future__ import annotations

from pathlib import Path

import pytest

from belle_kedro.llm.base import LLMRequest
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.runner import (
    NOT_SENT_OVER_BUDGET,
    RequestLimits,
    TokenPrices,
    collect_responses,
    run_sync,
)
from tests.support.llm import openai_backend
from tests.support.openai_server import FakeOpenAIServer, Reply

# $1 per 1K tokens either way, and every answer reports 10 + 5 tokens: $0.015 each.
PRICES = TokenPrices(prompt_per_1k=1.0, completion_per_1k=1.0)
ANSWER_COST = 0.015


def _fixed_usage(body: dict, endpoint: str) -> Reply:
    return Reply(text="ok", usage={"prompt_tokens": 10, "completion_tokens": 5})


def _requests(count: int) -> list[LLMRequest]:
    # Worst case per request: 11 prompt characters ("sys" + "prompt i") + 8 = $0.019.
    return [
        LLMRequest(f"r{i}", f"prompt {i}", system="sys", params={"max_tokens": 8})
        for i in range(count)
    ]


def _collect(
    server: FakeOpenAIServer,
    journal: ResponseJournal,
    max_cost_usd: float | None,
    *,
    max_in_flight: int = 1,
    count: int = 20,
):
    backend = openai_backend(server.base_url, max_retries=0)
    limits = RequestLimits(max_in_flight, None, None, max_cost_usd, PRICES)
    return run_sync(collect_responses(backend, _requests(count), journal, limits))


def test_worst_case_is_the_prompt_estimate_plus_a_full_answer():
    assert PRICES.worst_case(_requests(1)[0]) == pytest.approx(0.019)


def test_sends_until_the_next_worst_case_would_pass_then_a_larger_limit_continues(
    tmp_path: Path,
):
    journal = ResponseJournal(tmp_path / "j.jsonl")
    with FakeOpenAIServer(_fixed_usage) as server:
        # 6 answers ($0.090) + a 7th worst case ($0.019) would pass $0.10.
        first = _collect(server, journal, 0.10)
        assert len(server.requests) == 6
        held_back = [rid for rid, r in first.items() if r.error == NOT_SENT_OVER_BUDGET]
        assert held_back == [f"r{i}" for i in range(6, 20)]
        assert len(journal.records()) == 6  # held-back requests are not journaled

        # The journal's $0.090 counts as spent: $0.21 allows 7 more, none sent twice.
        second = _collect(server, journal, 0.21)
        assert len(server.requests) == 13
        assert sum(r.ok for r in second.values()) == 13

        third = _collect(server, journal, None)
        assert len(server.requests) == 20
        assert all(r.ok for r in third.values())
    sent_ids = [r["client_request_id"] for r in server.requests]
    assert len(set(sent_ids)) == len(sent_ids) == 20


def test_requests_in_flight_count_at_their_worst_case(tmp_path: Path):
    with FakeOpenAIServer(_fixed_usage, latency_s=0.05) as server:
        # 8 may be in flight, but 5 worst cases ($0.095) already fill $0.10: a 6th
        # would pass it even though nothing has been spent yet.
        answers = _collect(
            server, ResponseJournal(tmp_path / "j.jsonl"), 0.10, max_in_flight=8
        )
    assert len(server.requests) == 5
    assert sum(r.ok for r in answers.values()) == 5


def test_a_limit_without_prices_is_refused(tmp_path: Path):
    limits = RequestLimits(1, None, None, 1.0, TokenPrices(0.0, 0.0))
    with pytest.raises(ValueError, match="max_cost_usd needs price_per_1k_tokens"):
        run_sync(
            collect_responses(None, [], ResponseJournal(tmp_path / "j.jsonl"), limits)  # type: ignore[arg-type]
        )
