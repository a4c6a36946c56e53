"""The Batch API collector against the loopback server's /v1/files and /v1/batches."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import openai
import pytest

from belle_kedro.llm.base import (
    BATCH_ITEM_PREFIX,
    LLMRequest,
    LLMResponse,
    RetryPolicy,
)
from belle_kedro.llm.batch import (
    NO_OUTPUT,
    NOT_SUBMITTED,
    BatchLedger,
    BatchReport,
    SubmittedBatch,
    collect_batch_responses,
    input_line,
    parse_output_line,
    split_into_files,
)
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.openai_backend import OpenAIBackend
from belle_kedro.llm.runner import (
    NOT_SENT_OVER_BUDGET,
    RequestLimits,
    RunProgress,
    TokenPrices,
    collect_responses,
)
from belle_kedro.llm.settings import BatchSettings
from tests.support.openai_server import CHAT_PATH, FakeOpenAIServer

POLICY = RetryPolicy(max_retries=2, backoff_base_s=0.01, backoff_max_s=0.02)


def settings(**changes: Any) -> BatchSettings:
    values: dict[str, Any] = {
        "body": "chat",
        "max_requests_per_file": 4,
        "max_bytes_per_file": 1_000_000,
        "poll_interval_s": 0.01,
        "poll_max_interval_s": 0.02,
        "discount": 0.5,
        "submit": True,
        "import_outputs": [],
    } | changes
    return BatchSettings(**values)


def backend_for(server: FakeOpenAIServer, api: str = "chat") -> OpenAIBackend:
    return OpenAIBackend(
        model="m",
        api_key="k",
        api=api,  # type: ignore[arg-type]
        base_url=server.base_url,
        timeout_s=5,
        retry_policy=POLICY,
    )


def plan(count: int) -> list[LLMRequest]:
    return [
        LLMRequest(
            request_id=f"req-{i:03d}",
            prompt=f"写一首关于第{i}个季节的短诗。",
            system="你是一位诗人。",
            params={"temperature": 0.7, "max_tokens": 64, "seed": i},
            meta={"request_index": i},
        )
        for i in range(count)
    ]


LIMITS = RequestLimits(
    max_in_flight=4, requests_per_minute=None, tokens_per_minute=None
)


def spend_limit_of(request: LLMRequest, worst_cases: float) -> RequestLimits:
    """A spend limit of ``worst_cases`` times ``request``'s worst case at batch prices."""
    prices = TokenPrices(1.0, 1.0).scaled(0.5)
    return RequestLimits(
        max_in_flight=4,
        requests_per_minute=None,
        tokens_per_minute=None,
        max_cost_usd=prices.worst_case(request) * worst_cases,
        prices=prices,
    )


def run_batch(server, requests, journal, report, limits=LIMITS, **changes):
    async def collect() -> dict[str, LLMResponse]:
        backend = backend_for(server)
        try:
            return await collect_batch_responses(
                backend,
                requests,
                journal,
                limits,
                settings=settings(**changes),
                report=report,
            )
        finally:  # as the client does: no HTTP pool left for the closed loop
            await backend.aclose()

    return asyncio.run(collect())


def test_files_respect_both_limits_and_a_line_over_the_byte_limit_is_refused():
    lines = [(f"r{i}", b"x" * 10 + b"\n") for i in range(7)]
    assert [len(f) for f in split_into_files(lines, 3, 1000)] == [3, 3, 1]
    assert [len(f) for f in split_into_files(lines, 100, 25)] == [2, 2, 2, 1]
    with pytest.raises(ValueError, match="r0 alone is 11 bytes"):
        split_into_files(lines, 3, 10)


def test_a_batch_run_journals_the_same_answers_as_the_chat_runner(tmp_path: Path):
    requests = plan(10)
    with FakeOpenAIServer(polls_per_state=2) as server:
        chat = ResponseJournal(tmp_path / "chat.jsonl")
        asyncio.run(collect_responses(backend_for(server), requests, chat, LIMITS))
        batch = ResponseJournal(tmp_path / "batch.jsonl")
        report = BatchReport()
        answers = run_batch(server, requests, batch, report)
        chat_bodies = {r["client_request_id"]: r for r in server.requests}
    assert all(a.ok for a in answers.values())
    keep = ("request_id", "text", "finish_reason", "usage", "params", "meta", "api")
    by_id = {r["request_id"]: r for r in chat.records()}
    for record in batch.records():
        assert {k: record[k] for k in keep} == {
            k: by_id[record["request_id"]][k] for k in keep
        }
        assert record["batch_id"].startswith("batch-")
    assert report.batches_submitted == 3 and report.items_answered == 10  # 4 + 4 + 2
    assert report.batch_states == {"completed": 3}
    # Each input line carries exactly the body the chat runner sent.
    inputs = sorted(BatchLedger.beside(batch).inputs_dir.glob("*.jsonl"))
    lines = [
        json.loads(x) for path in inputs for x in path.read_text("utf-8").splitlines()
    ]
    assert len(lines) == 10 and {x["url"] for x in lines} == {CHAT_PATH}
    for line in lines:
        sent = {k: v for k, v in chat_bodies[line["custom_id"]].items()}
        assert {k: sent[k] for k in line["body"]} == line["body"]


def _faults(custom_id: str, attempt: int) -> str | None:
    if attempt > 1:
        return None
    return {"req-001": "error", "req-004": "expire", "req-006": "malformed"}.get(
        custom_id
    )


def test_failed_expired_and_malformed_items_are_answered_within_one_run(
    tmp_path: Path,
):
    requests = plan(8)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    with FakeOpenAIServer(batch_faults=_faults) as server:
        report = BatchReport()
        answers = run_batch(server, requests, journal, report)
    faulty = {"req-001", "req-004", "req-006"}
    assert all(a.ok for a in answers.values())
    assert {rid for rid, a in answers.items() if a.attempts == 2} == faulty
    assert report.items_failed == 2  # the error line and the expired one
    assert report.lines_malformed == 1 and report.items_without_output == 1
    assert report.batch_states == {"expired": 1, "completed": 2}
    assert report.follow_up_batches == 1 and report.items_resubmitted == 3
    assert {k for k, n in server.batch_submissions.items() if n == 2} == faulty
    assert max(server.batch_submissions.values()) == 2
    # Only the malformed answer was billed twice: the server answered it, we could not read it.
    assert server.paid_twice() == ["req-006"]
    assert journal.done_ids() == {r.request_id for r in requests}


def test_an_item_failing_every_try_stops_after_max_retries_and_the_next_run_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    requests = plan(6)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    broken = {"req-002": "error", "req-005": "expire"}

    def faults(custom_id: str, attempt: int) -> str | None:
        return broken.get(custom_id)

    with FakeOpenAIServer(batch_faults=faults) as server:
        first = BatchReport()
        with caplog.at_level(logging.WARNING, logger="belle_kedro.llm.batch"):
            answers = run_batch(server, requests, journal, first)
        tries = dict(server.batch_submissions)
        broken.clear()  # the outage ends
        second = BatchReport()
        again = run_batch(server, requests, journal, second)
    failed = {rid: a for rid, a in answers.items() if not a.ok}
    assert set(failed) == {"req-002", "req-005"}
    # 1 + POLICY.max_retries tries each, and the try count travels with the failure.
    assert tries["req-002"] == tries["req-005"] == 3 == 1 + POLICY.max_retries
    assert all(a.attempts == 3 for a in failed.values())
    assert "batch_expired" in failed["req-005"].error
    assert first.follow_up_batches == 2 and first.items_resubmitted == 4
    assert [
        r.getMessage() for r in caplog.records if "follow-up" in r.getMessage()
    ] == [
        "batch: 2 item(s) failed or expired; submitting them again "
        f"(follow-up batch, try {n} of at most 3)"
        for n in (2, 3)
    ]
    assert all(a.ok for a in again.values())
    assert second.items_submitted == 2  # only the two, nothing answered is sent again
    assert not server.paid_twice()
    assert journal.done_ids() == {r.request_id for r in requests}


def test_an_item_never_given_a_usable_line_comes_back_as_no_output_after_its_tries(
    tmp_path: Path,
):
    requests = plan(3)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    prices = TokenPrices(prompt_per_1k=1.0, completion_per_1k=1.0)
    # A spend limit far above the plan: the failed item's hold must be freed, not kept.
    limits = RequestLimits(
        max_in_flight=4,
        requests_per_minute=None,
        tokens_per_minute=None,
        max_cost_usd=1000.0,
        prices=prices,
    )
    with FakeOpenAIServer(
        batch_faults=lambda cid, n: "malformed" if cid == "req-001" else None
    ) as server:
        answers = run_batch(server, requests, journal, BatchReport(), limits)
    lost = answers["req-001"]
    assert lost.error == NO_OUTPUT and lost.request_id == "req-001"
    assert lost.model == "m" and lost.attempts == 1 + POLICY.max_retries
    assert answers["req-000"].ok and answers["req-002"].ok
    assert "req-001" not in {r["request_id"] for r in journal.records()}


def test_files_and_batches_calls_are_retried_and_give_up_after_max_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    requests = plan(4)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    caplog.set_level(logging.INFO, logger="belle_kedro.llm.batch")
    with FakeOpenAIServer() as server:
        # Each call fails as often as POLICY allows (2 retries), then succeeds.
        server.api_faults = {
            "POST /v1/files": [429, 500],
            "POST /v1/batches": [503],
            "GET /v1/batches": [500, 0],  # 0: the connection drops
            "GET /v1/files": [500],  # the output file's download
        }
        answers = run_batch(server, requests, journal, BatchReport())
        assert all(a.ok for a in answers.values())
        # Each retry says which call failed, with which status, and when it goes again.
        retries = [
            re.fullmatch(
                r"batch API: (\S+) failed \((Connection error\.|Error code: (\d+) - "
                r".*scripted \3.*)\); retry in 0\.0[0-2]s",
                message,
            )
            for message in caplog.messages
            if message.startswith("batch API:")
        ]
        assert [(m.group(1), m.group(3)) for m in retries if m] == [
            ("files.create", "429"),
            ("files.create", "500"),
            ("batches.create", "503"),
            ("batches.retrieve", "500"),
            ("batches.retrieve", None),  # the dropped connection
            ("files.content", "500"),
        ]
        # Retried calls created one batch, not one per try.
        assert len(server.batches) == 1 and max(server.batch_submissions.values()) == 1
        assert all(not left for left in server.api_faults.values())
        # One failure more than POLICY allows: the error comes out.
        server.api_faults = {"POST /v1/files": [500, 500, 500]}
        with pytest.raises(openai.InternalServerError):
            run_batch(server, plan(5)[4:], journal, BatchReport())
        # A client error is not retried.
        server.api_faults = {"POST /v1/files": [400, 400]}
        with pytest.raises(openai.BadRequestError):
            run_batch(server, plan(6)[5:], journal, BatchReport())
        assert server.api_faults["POST /v1/files"] == [400]


def submit_by_hand(
    server: FakeOpenAIServer, requests: list[LLMRequest], ledger: BatchLedger
) -> str:
    """What a killed run left: an input file and its batch on the server (the batch's
    id returned), the upload in the ledger but not yet the batch."""
    backend = backend_for(server)
    data = b"".join(
        json.dumps(
            {
                "custom_id": r.request_id,
                "method": "POST",
                "url": CHAT_PATH,
                "body": backend.request_body(r),
            }
        ).encode()
        + b"\n"
        for r in requests
    )
    client = openai.OpenAI(base_url=server.base_url, api_key="k")
    uploaded = client.files.create(file=("in.jsonl", data), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint=CHAT_PATH, completion_window="24h"
    )
    ledger.append(
        {
            "batch_key": "batch-killed",
            "event": "uploaded",
            "input_file_id": uploaded.id,
            "endpoint": CHAT_PATH,
            "request_ids": [r.request_id for r in requests],
        }
    )
    return batch.id


@pytest.mark.slow  # polls a batch through every state, twice (about 3 s)
@pytest.mark.parametrize("killed_before_the_batch_id_was_journaled", [True, False])
def test_a_killed_run_is_resumed_by_polling_its_batch_never_by_resubmitting(
    tmp_path: Path, killed_before_the_batch_id_was_journaled: bool
):
    requests = plan(3)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    ledger = BatchLedger.beside(journal)
    with FakeOpenAIServer(polls_per_state=3) as server:
        batch_id = submit_by_hand(server, requests, ledger)
        if not killed_before_the_batch_id_was_journaled:
            ledger.append(
                {"batch_key": "batch-killed", "event": "created", "batch_id": batch_id}
            )
        assert server.batches[batch_id]["status"] == "validating"
        report = BatchReport()
        answers = run_batch(server, requests + plan(5)[3:], journal, report)
    assert all(a.ok for a in answers.values())
    assert report.batches_resumed == 1 and report.batches_submitted == 1
    assert report.items_submitted == 2  # only the two requests not in the open batch
    assert max(server.batch_submissions.values()) == 1 and not server.paid_twice()
    assert len(server.batches) == 2
    assert ledger.open_batches() == []
    assert {r["batch_id"] for r in journal.records()[:3]} == {batch_id}
    # The resumed batch was these requests' first try, though this run did not send it.
    assert [answers[r.request_id].attempts for r in requests] == [1, 1, 1]


def test_the_spend_limit_counts_batch_prices_and_holds_back_the_rest(tmp_path: Path):
    requests = plan(6)
    prices = TokenPrices(1.0, 1.0).scaled(0.5)
    worst = prices.worst_case(requests[0])
    limits = RequestLimits(
        max_in_flight=4,
        requests_per_minute=None,
        tokens_per_minute=None,
        max_cost_usd=worst * 2.5,
        prices=prices,
    )
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    with FakeOpenAIServer() as server:
        answers = run_batch(server, requests, journal, BatchReport(), limits)
    assert sum(a.ok for a in answers.values()) == 2
    assert len(server.batch_submissions) == 2
    assert len(journal.records()) == 2  # the held-back requests are not journaled


def parsed(raw: bytes) -> LLMResponse:
    """The answer or failure parse_output_line reads from a well-formed line."""
    line = parse_output_line(raw, "chat", "m")
    assert line is not None
    return line[1]


def test_output_lines_parse_to_answers_failures_or_none():
    ok = {
        "custom_id": "a",
        "response": {
            "status_code": 200,
            "body": {"model": "m", "choices": [{"message": {"content": "好"}}]},
        },
    }
    assert parsed(json.dumps(ok).encode()).text == "好"
    # A body that names no model: the answer is the run's model's.
    body = {"choices": [{"message": {"content": "好"}}]}
    no_model = {"custom_id": "a", "response": {"status_code": 200, "body": body}}
    assert parsed(json.dumps(no_model).encode()).model == "m"
    error = {"custom_id": "b", "response": {"status_code": 429, "body": {}}}
    failed = parsed(json.dumps(error).encode())
    assert not failed.ok and failed.error == f"{BATCH_ITEM_PREFIX}HTTP 429: None"
    # A line with neither a response nor an error object is a failure, not a crash.
    bare = parsed(b'{"custom_id": "h", "response": null, "error": "?"}')
    assert bare.error == f"{BATCH_ITEM_PREFIX}None: None"
    gateway = {"custom_id": "g", "response": {"status_code": 502, "body": "<html>"}}
    assert parsed(json.dumps(gateway).encode()).error == (
        f"{BATCH_ITEM_PREFIX}HTTP 502: None"
    )
    # The body's error message is kept, under the HTTP status unless it names a code.
    refused = {"message": "bad model", "type": "invalid_request_error"}
    for body_error, expected in [
        (refused, "HTTP 400: bad model"),
        ({**refused, "code": "model_not_found"}, "model_not_found: bad model"),
    ]:
        line = {
            "custom_id": "e",
            "response": {"status_code": 400, "body": {"error": body_error}},
        }
        assert parsed(json.dumps(line).encode()).error == BATCH_ITEM_PREFIX + expected
    # An error line (expired, or never run) says why.
    expired = {"code": "batch_expired", "message": "window ended"}
    for response in [None, {"status_code": 500, "body": {}}]:
        error_line: dict[str, Any] = {"custom_id": "f", "response": response}
        error_line["error"] = expired
        assert parsed(json.dumps(error_line).encode()).error == (
            f"{BATCH_ITEM_PREFIX}batch_expired: window ended"
        )
    broken_body = {"custom_id": "c", "response": {"status_code": 200, "body": {}}}
    broken = parsed(json.dumps(broken_body).encode())
    assert broken.error is not None
    assert broken.error.startswith(
        f"{BATCH_ITEM_PREFIX}malformed_body: malformed response body"
    )
    assert parse_output_line(b'{"custom_id": "d", "resp', "chat", "m") is None
    assert parse_output_line(b'{"response": {}}', "chat", "m") is None


def test_offline_input_files_then_their_run_batch_output_is_imported(tmp_path: Path):
    """submit: false writes the input files and calls no API; their output is read back."""
    requests = plan(5)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    with FakeOpenAIServer() as server:  # only to answer the lines as vLLM would
        report = BatchReport()
        answers = run_batch(server, requests, journal, report, submit=False)
        assert not server.files and not server.batches  # nothing was uploaded
        assert all(a.error == NOT_SUBMITTED for a in answers.values())
        assert report.items_written_offline == 5 and not journal.records()
        inputs = sorted(BatchLedger.beside(journal).inputs_dir.glob("offline-*.jsonl"))
        assert len(inputs) == 2  # 4 + 1 lines: max_requests_per_file is 4
        # Stand-in for `run_batch -i <input> -o out.jsonl`: the server answers the lines.
        client = openai.OpenAI(base_url=server.base_url, api_key="k")
        outputs = []
        for path in inputs:
            uploaded = client.files.create(file=path.open("rb"), purpose="batch")
            batch = client.batches.create(
                input_file_id=uploaded.id, endpoint=CHAT_PATH, completion_window="24h"
            )
            while batch.status != "completed":
                batch = client.batches.retrieve(batch.id)
            output = tmp_path / f"{path.stem}.out.jsonl"
            assert batch.output_file_id is not None
            output.write_bytes(client.files.content(batch.output_file_id).content)
            outputs.append(str(output))
        uploads = len(server.files)
        imported = BatchReport()
        again = run_batch(
            server, requests, journal, imported, submit=False, import_outputs=outputs
        )
        assert len(server.files) == uploads  # importing calls no API either
    assert all(a.ok for a in again.values())
    assert imported.items_imported == 5 and imported.items_written_offline == 0
    assert {r["batch_id"] for r in journal.records()} == {
        f"import:{Path(o).name}" for o in outputs
    }
    with pytest.raises(FileNotFoundError, match="import_outputs: no file"):
        run_batch(server, requests, journal, BatchReport(), import_outputs=["nope"])


def test_the_ledger_lists_uploaded_batches_until_collected_in_order(tmp_path: Path):
    ledger = BatchLedger(tmp_path / "raw.batches.jsonl")
    for key, ids in (("k1", ["a", 1]), ("k2", ["b"]), ("k3", ["c"])):
        ledger.append(
            {
                "batch_key": key,
                "event": "uploaded",
                "input_file_id": f"file-{key}",
                "endpoint": "/v1/chat/completions",
                "request_ids": ids,
            }
        )
    ledger.append({"batch_key": "k2", "event": "created", "batch_id": "batch-2"})
    ledger.append({"batch_key": "k9", "event": "created", "batch_id": "batch-9"})
    ledger.append({"batch_key": "k1", "event": "collected"})
    ledger.append({"batch_key": "k8", "event": "collected"})  # never uploaded
    assert BatchLedger(ledger.path).open_batches() == [
        SubmittedBatch("k2", "file-k2", "/v1/chat/completions", ["b"], "batch-2"),
        SubmittedBatch("k3", "file-k3", "/v1/chat/completions", ["c"], None),
    ]
    ledger.append({"batch_key": "k3", "event": "created", "batch_id": "batch-3"})
    ledger.append({"batch_key": "k2", "event": "collected"})
    (opened,) = BatchLedger(ledger.path).open_batches()
    assert (opened.batch_key, opened.batch_id) == ("k3", "batch-3")
    ledger.append({"batch_key": "k1", "event": "uploaded", "input_file_id": "f",
                   "endpoint": "/v1/completions", "request_ids": [7]})  # fmt: skip
    assert [b.request_ids for b in BatchLedger(ledger.path).open_batches()] == [
        ["c"],
        ["7"],  # ids as text
    ]


def test_the_ledger_ties_each_batch_to_its_input_file_and_closes_it(tmp_path: Path):
    """Two files, two unreadable answers: the ledger and the report account for each."""
    requests = plan(6)  # files of 4 and 2 requests
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    unreadable = {"req-001", "req-004"}  # one in each file, readable on the second try
    with FakeOpenAIServer(
        batch_faults=lambda cid, n: (
            "malformed" if cid in unreadable and n == 1 else None
        )
    ) as server:
        report = BatchReport()
        answers = run_batch(server, requests, journal, report)
        batches = {b["id"]: b for b in server.batches.values()}
        files = {f["id"]: f["data"] for f in server.files.values()}
    assert all(a.ok for a in answers.values())
    assert report.items_submitted == 4 + 2 + 2  # the follow-up's two included
    assert report.lines_malformed == 2 and report.items_without_output == 2
    ledger = BatchLedger.beside(journal)
    events: dict[str, list[dict[str, Any]]] = {}
    for record in ledger.records():
        events.setdefault(record["batch_key"], []).append(record)
    assert len(events) == len(batches) == 3
    for key, (uploaded, created, collected) in events.items():
        assert (uploaded["event"], created["event"]) == ("uploaded", "created")
        assert collected["event"] == "collected"
        batch = batches[created["batch_id"]]
        # The server's batch names our key (so the dashboard leads back to the ledger),
        # runs on the uploaded file, which is the input file kept beside the journal.
        assert batch["metadata"] == {"belle_batch_key": key}
        assert batch["input_file_id"] == uploaded["input_file_id"]
        kept = ledger.inputs_dir / uploaded["input_file"]
        assert kept.read_bytes() == files[uploaded["input_file_id"]]
        assert (collected["batch_id"], collected["status"]) == (
            batch["id"],
            "completed",
        )
    assert ledger.open_batches() == []


def test_an_item_answered_and_also_given_an_error_line_keeps_its_answer(
    tmp_path: Path,
):
    requests = plan(3)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    with FakeOpenAIServer(
        batch_faults=lambda cid, n: "duplicate" if cid == "req-001" else None
    ) as server:
        report = BatchReport()
        answers = run_batch(server, requests, journal, report)
    assert all(a.ok for a in answers.values())
    assert report.items_failed == 0 and report.follow_up_batches == 0
    assert max(server.batch_submissions.values()) == 1 and not server.paid_twice()


def test_a_run_killed_while_journaling_a_batch_journals_the_rest_on_resume(
    tmp_path: Path,
):
    requests = plan(3)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    ledger = BatchLedger.beside(journal)
    with FakeOpenAIServer() as server:
        run_batch(server, requests, journal, BatchReport())
        # What a kill after the batch's first answer was journaled leaves on disk.
        first_answer = journal.path.read_bytes().splitlines(keepends=True)[0]
        journal.path.write_bytes(first_answer)
        lines = ledger.path.read_bytes().splitlines(keepends=True)
        ledger.path.write_bytes(b"".join(x for x in lines if b'"collected"' not in x))
        report = BatchReport()
        answers = run_batch(server, requests, journal, report)
    assert all(a.ok for a in answers.values())
    assert report.batches_resumed == 1 and report.items_submitted == 0
    assert sorted(r["request_id"] for r in journal.records()) == [
        r.request_id for r in requests
    ]
    assert len(server.batches) == 1 and not server.paid_twice()
    assert ledger.open_batches() == []


def resume_a_killed_run(
    tmp_path: Path, left: list[LLMRequest], planned: list[LLMRequest], faults: Any
) -> tuple[dict[str, LLMResponse], BatchReport, FakeOpenAIServer, BatchLedger]:
    """Run ``planned`` where a killed run created (and recorded) a batch of ``left``
    that it never collected; the answers, report, server and ledger."""
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    ledger = BatchLedger.beside(journal)
    with FakeOpenAIServer(batch_faults=faults) as server:
        batch_id = submit_by_hand(server, left, ledger)
        ledger.append(
            {"batch_key": "batch-killed", "event": "created", "batch_id": batch_id}
        )
        report = BatchReport()
        answers = run_batch(server, planned, journal, report)
    return answers, report, server, ledger


def test_a_resumed_batch_may_hold_requests_the_new_plan_dropped(tmp_path: Path):
    requests = plan(3)
    # The dropped request's line comes back unreadable: no answer to journal for it.
    answers, report, server, ledger = resume_a_killed_run(
        tmp_path,
        requests,
        requests[:2],
        lambda cid, n: "malformed" if cid == "req-002" else None,
    )
    assert list(answers) == ["req-000", "req-001"]
    assert [(a.ok, a.attempts) for a in answers.values()] == [(True, 1), (True, 1)]
    assert report.items_without_output == 1 and report.follow_up_batches == 0
    assert len(server.batches) == 1 and ledger.open_batches() == []


def test_an_answer_to_a_request_the_new_plan_dropped_is_journaled_as_is(
    tmp_path: Path,
):
    requests = plan(3)
    answers, _, _, _ = resume_a_killed_run(tmp_path, requests, requests[:2], None)
    assert list(answers) == ["req-000", "req-001"]
    # Paid for, so kept: its request is not at hand, so no params, but its API.
    records = ResponseJournal(tmp_path / "raw.jsonl").records()
    dropped = [r for r in records if r["request_id"] == "req-002"]
    assert len(dropped) == 1 and "params" not in dropped[0]
    assert dropped[0]["api"] == "chat" and dropped[0]["batch_id"]


def test_a_batch_run_counts_each_answer_once_in_the_run_progress(tmp_path: Path):
    progress = RunProgress("generate", total=3)
    with FakeOpenAIServer() as server:
        asyncio.run(
            collect_batch_responses(
                backend_for(server),
                plan(3),
                ResponseJournal(tmp_path / "raw.jsonl"),
                LIMITS,
                settings=settings(),
                report=BatchReport(),
                progress=progress,
            )
        )
    assert progress.bar.n == 3 and progress.errors == 0


def test_a_resumed_batch_counts_as_a_try_of_its_items(tmp_path: Path):
    requests = plan(2)
    # req-001 fails on every try: the batch a killed run left was its first.
    answers, report, server, _ = resume_a_killed_run(
        tmp_path,
        requests,
        requests,
        lambda cid, n: "error" if cid == "req-001" else None,
    )
    assert answers["req-000"].ok and answers["req-000"].attempts == 1
    failed = answers["req-001"]
    assert not failed.ok and failed.attempts == 1 + POLICY.max_retries
    assert server.batch_submissions["req-001"] == 1 + POLICY.max_retries
    assert report.follow_up_batches == POLICY.max_retries


def test_a_failed_item_the_spend_limit_holds_back_is_not_followed_up(tmp_path: Path):
    requests = plan(6)
    limits = spend_limit_of(requests[0], worst_cases=2.5)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    # Both sent items fail; the limit already held back the other four, so once it
    # has refused a request it sends none, follow-ups included.
    with FakeOpenAIServer(batch_faults=lambda cid, n: "error") as server:
        report = BatchReport()
        answers = run_batch(server, requests, journal, report, limits)
    assert dict(server.batch_submissions) == {"req-000": 1, "req-001": 1}
    assert [(a.error, a.model, a.attempts) for a in answers.values()] == [
        (NOT_SENT_OVER_BUDGET, "m", 0)
    ] * 6
    assert report.follow_up_batches == 0 and journal.done_ids() == set()


def test_the_progress_bar_counts_the_items_of_the_batches_waited_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    with FakeOpenAIServer() as server:
        run_batch(server, plan(3), journal, BatchReport())
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert any(
        line.startswith("batch: 100%") and "3/3" in line and "req/s" in line
        for line in bar
    )


def test_a_file_may_fill_its_byte_limit_exactly():
    lines = [(f"r{i}", b"x" * 10 + b"\n") for i in range(4)]
    # 11-byte lines: two fill a 22-byte file to the byte, a third starts the next.
    assert [len(f) for f in split_into_files(lines, 100, 22)] == [2, 2]
    assert [len(f) for f in split_into_files(lines[:1], 100, 11)] == [1]


def test_an_input_line_is_sorted_utf8_json_of_the_request():
    backend = OpenAIBackend(
        model="m",
        api_key="k",
        api="chat",
        base_url="http://127.0.0.1:9",
        timeout_s=5,
        retry_policy=POLICY,
    )
    request = plan(1)[0]
    line = input_line(backend, request, CHAT_PATH)
    body = json.dumps(backend.request_body(request), ensure_ascii=False, sort_keys=True)
    assert (
        line
        == (
            f'{{"body": {body}, "custom_id": "req-000", "method": "POST", '
            f'"url": "{CHAT_PATH}"}}\n'
        ).encode()
    )


def test_stored_answers_count_in_the_progress_of_a_resumed_run(tmp_path: Path):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    with FakeOpenAIServer() as server:
        run_batch(server, plan(3), journal, BatchReport())
        progress = RunProgress("generate", total=4)
        asyncio.run(
            collect_batch_responses(
                backend_for(server),
                plan(4),
                journal,
                LIMITS,
                settings=settings(),
                report=BatchReport(),
                progress=progress,
            )
        )
    # Three answers from the journal, one from the new batch.
    assert progress.bar.n == 4 and progress.errors == 0
    assert server.batch_submissions == {f"req-{i:03d}": 1 for i in range(4)}


def test_an_offline_run_writes_every_unanswered_request_and_resumes_no_batch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    requests = plan(5)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    ledger = BatchLedger.beside(journal)
    with FakeOpenAIServer() as server:
        submit_by_hand(server, requests[:2], ledger)  # an online run's batch, open
        report = BatchReport()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="belle_kedro.llm.batch"):
            answers = run_batch(server, requests, journal, report, submit=False)
    assert [
        (rid, a.request_id, a.model, a.error, a.attempts) for rid, a in answers.items()
    ] == [(r.request_id, r.request_id, "m", NOT_SUBMITTED, 0) for r in requests]
    # Offline the API is never asked about the open batch: its requests go out too.
    assert report.batches_resumed == 0 and report.items_written_offline == 5
    written = {
        path: [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]
        for path in ledger.inputs_dir.glob("offline-*.jsonl")
    }
    assert sorted(rid for ids in written.values() for rid in ids) == [
        r.request_id for r in requests
    ]
    assert sorted(
        r.getMessage() for r in caplog.records if r.name == "belle_kedro.llm.batch"
    ) == sorted(
        f"batch: {len(ids)} request(s) written to {path}"
        for path, ids in written.items()
    )


def test_the_report_adds_up_over_the_calls_of_one_client(tmp_path: Path):
    requests = plan(3)
    answers, report, server, _ = resume_a_killed_run(tmp_path, requests, requests, None)
    assert report.batches_resumed == 1 and report.batches_submitted == 0
    # The client's next call (a later round) resumes nothing; the count stays.
    with FakeOpenAIServer() as again:
        run_batch(again, plan(4), ResponseJournal(tmp_path / "raw.jsonl"), report)
    assert report.batches_resumed == 1 and report.batches_submitted == 1


def test_a_resumed_batch_counts_against_the_spend_limit(tmp_path: Path):
    requests = plan(4)
    limits = spend_limit_of(requests[0], worst_cases=2.5)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    ledger = BatchLedger.beside(journal)
    with FakeOpenAIServer() as server:
        batch_id = submit_by_hand(server, requests[:2], ledger)
        ledger.append(
            {"batch_key": "batch-killed", "event": "created", "batch_id": batch_id}
        )
        answers = run_batch(server, requests, journal, BatchReport(), limits)
    # The open batch's two requests hold two of the 2.5 worst cases: no new one fits.
    assert [a.error for a in answers.values()] == [None, None] + [
        NOT_SENT_OVER_BUDGET
    ] * 2
    assert server.batch_submissions == {"req-000": 1, "req-001": 1}


def output_line(request_id: str, text: str | None, model: str | None = None) -> bytes:
    """A Batch output line: an answer with ``text`` (its body naming ``model`` if
    given), or, with no text, the item's failure."""
    body: dict[str, Any] = {"choices": [{"message": {"content": text}}]}
    if model is not None:
        body["model"] = model
    response = {"status_code": 200 if text else 500, "body": body if text else {}}
    return json.dumps({"custom_id": request_id, "response": response}).encode()


def test_an_imported_output_journals_each_new_answer_once_and_counts_the_rest(
    tmp_path: Path,
):
    requests = plan(4)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    with FakeOpenAIServer() as server:
        run_batch(server, requests[3:], journal, BatchReport())  # req-003 answered
    stored = journal.records()[0]
    output = tmp_path / "out.jsonl"
    output.write_bytes(
        b"\n".join(
            [
                b"",  # a blank line is skipped, not the end
                b'{"custom_id": "req-000", "resp',  # malformed: counted, then on
                b"not json",
                output_line("req-000", "第一个答案"),  # names no model: the run's
                output_line("req-000", "同一条的第二个答案", "m2"),  # answered already
                output_line("req-001", None),  # a failed item is not an answer
                output_line("req-999", "没有这个请求"),  # not in this plan
                output_line("req-003", "已经有答案了", "m2"),  # in the journal already
                output_line("req-002", "第三个答案", "m2"),
            ]
        )
    )
    report = BatchReport()
    with FakeOpenAIServer() as server:
        answers = run_batch(
            server,
            requests,
            journal,
            report,
            submit=False,
            import_outputs=[str(output)],
        )
    assert report.lines_malformed == 2 and report.items_imported == 2
    assert [
        (r["request_id"], r["text"], r["model"]) for r in journal.records()[1:]
    ] == [("req-000", "第一个答案", "m"), ("req-002", "第三个答案", "m2")]
    assert journal.records()[0] == stored
    assert [answers[r.request_id].error for r in requests] == [
        None,
        NOT_SUBMITTED,
        None,
        None,
    ]


def test_a_batch_of_answers_is_fsynced_once_not_once_an_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    fsyncs: list[int] = []
    real_fsync = os.fsync

    def counted(descriptor: int) -> None:
        fsyncs.append(descriptor)
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", counted)
    counts = []
    for size in (1, 4):  # one batch either way: the same ledger events
        fsyncs.clear()
        journal = ResponseJournal(tmp_path / f"raw-{size}.jsonl")
        with FakeOpenAIServer() as server:
            run_batch(server, plan(size), journal, BatchReport())
        assert len(journal.records()) == size
        counts.append(len(fsyncs))
    # The answers of a batch are appended unsynced and fsynced together after it.
    assert counts[0] == counts[1]


@pytest.mark.parametrize(
    ("requests", "faults", "while_open"),
    [
        (3, None, {0, 1, 2}),  # a third of the items finish at a time
        (6, None, {0, 1, 3}),  # two batches polled together (4 and 2 items): summed
        (3, "error", {0, 1, 2}),  # failed items count as done, in every try's bar
    ],
)
def test_the_bar_shows_how_many_items_of_the_open_batches_are_done(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    requests: int,
    faults: str | None,
    while_open: set[int],
):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    with FakeOpenAIServer(
        polls_per_state=2, batch_faults=lambda cid, n: faults
    ) as server:
        run_batch(server, plan(requests), journal, BatchReport())
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    done = [
        (int(match[1]), int(match[2]))
        for line in bar
        if (match := re.search(r"in_open_done=(-?\d+), open=(\d+)", line))
    ]
    assert {count for count, still_open in done if still_open} == while_open
    assert done[-1] == (0, 0)  # once no batch is open, none is counted
    states = {
        state
        for line in bar
        for listed in re.findall(r"states=([a-z_,]+)", line)
        for state in listed.split(",")
    }
    assert states == {"validating", "in_progress", "finalizing", "completed"}


def test_each_poll_draws_the_bar_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    with FakeOpenAIServer(polls_per_state=2) as server:
        run_batch(server, plan(3), journal, BatchReport())
        polls = sum(batch["_polls"] for batch in server.batches.values())
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    drawn = sum("in_open_done=" in line for line in lines)
    # A log without a terminal gets every draw: once a poll, the last again at close
    # (and at most one more when a finished batch moves the bar).
    assert polls + 1 <= drawn <= polls + 2


def test_offline_input_files_go_under_a_journal_folder_not_made_yet(tmp_path: Path):
    journal = ResponseJournal(tmp_path / "run" / "generate" / "raw.jsonl")
    with FakeOpenAIServer() as server:
        report = BatchReport()
        run_batch(server, plan(2), journal, report, submit=False)
    inputs = list(BatchLedger.beside(journal).inputs_dir.glob("offline-*.jsonl"))
    assert report.items_written_offline == 2 and len(inputs) == 1


def test_the_bar_lists_the_states_of_the_open_batches_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    requests = plan(4)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    ledger = BatchLedger.beside(journal)
    with FakeOpenAIServer(polls_per_state=2) as server:
        batch_id = submit_by_hand(server, requests[:2], ledger)
        ledger.append(
            {"batch_key": "batch-killed", "event": "created", "batch_id": batch_id}
        )
        client = openai.OpenAI(base_url=server.base_url, api_key="k")
        for _ in range(2):  # the killed run's batch is a state ahead of the new one
            client.batches.retrieve(batch_id)
        run_batch(server, requests, journal, BatchReport())
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert any("states=in_progress,validating" in line for line in lines)


def test_polling_backs_off_while_nothing_moves_and_not_past_its_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded(delay: float) -> None:
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    with FakeOpenAIServer(polls_per_state=3) as server:
        run_batch(
            server,
            plan(3),
            journal,
            BatchReport(),
            poll_interval_s=1.0,
            poll_max_interval_s=3.0,
        )
    # Nine polls: the state (or the count of finished items) moves at the 3rd and 6th,
    # and the 9th finds it done. Each quiet poll doubles the wait, up to 3 s; a move
    # sets it back to 1 s.
    assert [d for d in delays if d >= 1] == [1, 2, 1, 2, 3, 1, 2, 3]
