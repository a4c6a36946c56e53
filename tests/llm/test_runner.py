"""The concurrent, retrying, journaling runner against a real loopback OpenAI server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from belle_kedro.llm.base import LLMRequest
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.runner import TokenBucket
from tests.support.llm import collect, openai_backend
from tests.support.openai_server import (
    CHAT_PATH,
    COMPLETION_PATH,
    FakeOpenAIServer,
    Reply,
)


def _backend(server: FakeOpenAIServer, api: str = "chat", **openai):
    return openai_backend(server.base_url, api, **openai)  # type: ignore[arg-type]


def _requests(count: int, prefix: str = "r") -> list[LLMRequest]:
    return [
        LLMRequest(
            f"{prefix}{i}",
            f"prompt {i}",
            system="sys",
            params={"max_tokens": 8, "seed": i},
        )
        for i in range(count)
    ]


def test_concurrency_is_capped_at_max_in_flight_counted_at_the_server(tmp_path: Path):
    with FakeOpenAIServer(latency_s=0.25) as server:
        responses = collect(
            _backend(server),
            _requests(64),
            ResponseJournal(tmp_path / "j.jsonl"),
            max_in_flight=16,
        )
    assert server.max_in_flight_seen == 16
    assert len(server.requests) == 64
    assert all(r.ok for r in responses.values()) and len(responses) == 64


@pytest.mark.slow  # waits out real client timeouts (about 3 s)
def test_429_500_and_timeouts_are_retried_with_exact_counts(tmp_path: Path):
    failures = {
        "r3": Reply(status=429, headers={"Retry-After": "0.4"}),
        "r5": Reply(status=500),
    }
    # Beyond the client timeout, which leaves room for a slow box's first requests
    # (a cold client on a loaded CI machine once took > 0.5 s for a plain answer).
    failures["r7"] = Reply(delay_s=3.5)
    failures["r9"] = Reply(status=503)
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def responder(body: dict, endpoint: str) -> Reply:
        request_id = body["messages"][-1]["content"].replace("prompt ", "r")
        with lock:
            seen[request_id] += 1
            first = seen[request_id] == 1
        if first and request_id in failures:
            return failures[request_id]
        return Reply(text=f"answer {request_id}")

    journal = ResponseJournal(tmp_path / "j.jsonl")
    with FakeOpenAIServer(responder) as server:
        responses = collect(
            _backend(server, timeout_s=2.0), _requests(12), journal, max_in_flight=4
        )
    assert len(server.requests) == 12 + len(failures)
    assert {rid: n for rid, n in seen.items() if n > 1} == dict.fromkeys(failures, 2)
    assert all(r.ok for r in responses.values())
    assert {
        rid: r.attempts for rid, r in responses.items() if r.attempts > 1
    } == dict.fromkeys(failures, 2)
    assert responses["r7"].text == "answer r7"
    # Retry-After is honoured: the retry of r3 came at least 0.4 s after the 429.
    r3_times = [
        r["received_at"] for r in server.requests if r["client_request_id"] == "r3"
    ]
    assert r3_times[1] - r3_times[0] >= 0.4
    assert len(journal.records()) == 12 and journal.done_ids() == {
        f"r{i}" for i in range(12)
    }


def test_malformed_bodies_and_truncation_never_crash_and_are_retried_later(
    tmp_path: Path,
):
    bad = {
        "r0": Reply(raw_body=b"{definitely not json"),
        "r1": Reply(raw_body=b'{"choices": []}'),
        "r2": Reply(raw_body=b'{"choices": [{"message": {"content": 42}}]}'),
        "r3": Reply(raw_body=b"\xff\xfe garbage"),
        "r4": Reply(raw_body=b"[1, 2, 3]"),
    }
    healed = threading.Event()

    def responder(body: dict, endpoint: str) -> Reply:
        request_id = body["messages"][-1]["content"].replace("prompt ", "r")
        if request_id in bad and not healed.is_set():
            return bad[request_id]
        if request_id == "r5":
            return Reply(text="cut off mid-sent", finish_reason="length")
        return Reply(text=f"fine {request_id}")

    journal = ResponseJournal(tmp_path / "j.jsonl")
    with FakeOpenAIServer(responder) as server:
        backend = _backend(server, max_retries=1)
        first = collect(backend, _requests(8), journal, max_in_flight=8)
        assert {rid for rid, r in first.items() if not r.ok} == set(bad)
        assert all("malformed" in (first[rid].error or "") for rid in bad)
        assert first["r5"].ok and first["r5"].finish_reason == "length"
        assert len(server.requests) == 8 + len(bad)  # one retry each for the malformed
        assert journal.done_ids() == {"r5", "r6", "r7"}
        # Failures are journaled but not done: the next call asks for exactly those again.
        healed.set()
        second = collect(backend, _requests(8), journal, max_in_flight=8)
    assert all(r.ok for r in second.values())
    assert len(server.requests) == 8 + 2 * len(bad)
    assert journal.done_ids() == {f"r{i}" for i in range(8)}


def test_stored_ids_are_never_sent_again(tmp_path: Path):
    journal = ResponseJournal(tmp_path / "j.jsonl")
    with FakeOpenAIServer() as server:
        backend = _backend(server)
        first = collect(backend, _requests(5), journal, max_in_flight=2)
        again = collect(backend, _requests(9), journal, max_in_flight=2)
    sent = Counter(r["client_request_id"] for r in server.requests)
    assert sent == Counter({f"r{i}": 1 for i in range(9)})
    assert {rid: again[rid].text for rid in first} == {
        rid: r.text for rid, r in first.items()
    }


def test_completion_api_sends_one_prompt_to_v1_completions(tmp_path: Path):
    with FakeOpenAIServer(lambda body, ep: Reply(text="续写")) as server:
        backend = _backend(server, api="completion")
        out = collect(
            backend,
            _requests(2),
            ResponseJournal(tmp_path / "j.jsonl"),
            max_in_flight=2,
        )
    assert {r["endpoint"] for r in server.requests} == {COMPLETION_PATH}
    assert server.requests[0]["prompt"].startswith("sys\n\nprompt ")
    assert (
        server.requests[0]["max_tokens"] == 8 and "messages" not in server.requests[0]
    )
    assert out["r0"].text == "续写" and out["r0"].usage["completion_tokens"] == 2
    assert not server.requests_for(CHAT_PATH)


def test_permanent_client_errors_are_not_retried(tmp_path: Path):
    with FakeOpenAIServer(lambda body, ep: Reply(status=401)) as server:
        out = collect(
            _backend(server),
            _requests(3),
            ResponseJournal(tmp_path / "j.jsonl"),
            max_in_flight=3,
        )
    assert len(server.requests) == 3
    assert all(r.error == "HTTP 401" and r.attempts == 1 for r in out.values())


def test_requests_per_minute_spaces_the_runners_requests_at_the_server(
    tmp_path: Path,
):
    # 60/min: a burst of 60 (the bucket's capacity), then one a second. Only lower
    # bounds: a stalled box can make the run slower, never the spacing shorter.
    # By t seconds after the run starts at most 60 + t requests can have been sent.
    with FakeOpenAIServer() as server:
        start = time.monotonic()
        collect(
            _backend(server),
            _requests(62),
            ResponseJournal(tmp_path / "j.jsonl"),
            max_in_flight=16,
            requests_per_minute=60,
        )
    arrivals = sorted(r["received_at"] - start for r in server.requests)
    assert len(arrivals) == 62
    assert arrivals[60] >= 0.95 and arrivals[61] >= 1.95


def test_the_token_bucket_lets_its_capacity_through_then_waits():
    bucket = TokenBucket(120)  # one every 0.5 s after a burst of 120

    async def take(n: int) -> float:
        start = time.monotonic()
        for _ in range(n):
            await bucket.acquire(1)
        return time.monotonic() - start

    asyncio.run(take(120))
    assert asyncio.run(take(2)) >= 0.9  # lower bound only (see above)


@pytest.mark.slow
def test_tokens_per_minute_budget_throttles_the_runner(tmp_path: Path):
    # Every answer costs 20 tokens; a budget of 1200 tokens/min (20/s) lets the first 60
    # through at once, and the last 2 have to wait for about 2 s of refill. Lower
    # bounds only: a loaded box can make the run slower, never the spacing shorter.
    usage = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
    with FakeOpenAIServer(lambda body, ep: Reply(text="x", usage=usage)) as server:
        start = time.monotonic()
        collect(
            _backend(server),
            _requests(62),
            ResponseJournal(tmp_path / "j.jsonl"),
            max_in_flight=8,
            tokens_per_minute=1200,
        )
        elapsed = time.monotonic() - start
    assert len(server.requests) == 62
    assert elapsed >= 1.5
    arrivals = sorted(r["received_at"] - start for r in server.requests)
    assert arrivals[-1] >= 0.9  # the last request waited for a refill


@pytest.mark.parametrize("max_in_flight", [0, -1])
def test_max_in_flight_must_be_positive(tmp_path: Path, max_in_flight: int):
    with pytest.raises(ValueError, match="max_in_flight"):
        collect(
            None, [], ResponseJournal(tmp_path / "j.jsonl"), max_in_flight=max_in_flight
        )
