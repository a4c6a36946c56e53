"""The OpenAI Batch API: the same requests and the same journal, at the batch price.

:func:`collect_batch_responses` is the batch twin of
:func:`belle_kedro.llm.runner.collect_responses`: it takes the same requests and the
same :class:`~belle_kedro.llm.journal.ResponseJournal`, and every answer enters that
journal under its request id, so parsing, resuming and the summary do not change.

* the requests not yet answered become Batch input JSON Lines (``custom_id`` = request
  id, ``body`` = the chat or completion body the ``openai`` backend would send), in
  files within ``max_requests_per_file`` and ``max_bytes_per_file``;
* each file is uploaded (``files.create(purpose="batch")``) and a batch created on it
  (``batches.create``, 24 h window); the batches are polled with backoff and their
  output and error files downloaded (``files.content``);
* a ledger of submitted batches sits beside the journal
  (``raw_responses.batches.jsonl``): the input file id is fsynced *before* the batch is
  created and the batch id right after, so a run killed at any moment resumes by
  polling its batches. A kill between the two is closed by looking the batch up by its
  input file (``batches.list``) before creating one. Requests in a batch that is still
  open are never submitted again;
* failed and expired items, and items whose output line is malformed or missing, are
  journaled as failures (or, with no usable line, left out) and go into a follow-up
  batch in the same call, up to the backend's ``max_retries`` follow-ups, as the chat
  runner retries a failed request. What still has no answer then comes back with
  ``error`` set and its try count in ``attempts``; a later run submits it again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import openai
from openai.types import Batch
from tqdm.auto import tqdm

from belle_kedro.common.files import write_atomic
from belle_kedro.llm.base import BATCH_ITEM_PREFIX, LLMError, LLMRequest, LLMResponse
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.openai_backend import (
    OpenAIBackend,
    response_from_body,
    retryable_status,
)
from belle_kedro.llm.runner import (
    RequestLimits,
    RunProgress,
    SpendBudget,
    backoff_s,
    journal_record,
    not_sent_over_budget,
    stored_state,
)
from belle_kedro.llm.settings import BatchSettings

logger = logging.getLogger(__name__)

# The error of a request ``submit: false`` wrote to an input file; never journaled.
NOT_SUBMITTED = "not submitted: batch.submit is false (see its input file)"
# The error of an item no output or error line answered (an expired or lost item).
NO_OUTPUT = f"{BATCH_ITEM_PREFIX}no_output: no usable output line (expired or lost)"
COMPLETION_WINDOW: Literal["24h"] = "24h"  # the only window the Batch API offers
# A batch in one of these states changes no more; the others are polled.
TERMINAL_STATES = frozenset({"completed", "failed", "expired", "cancelled"})

T = TypeVar("T")


LEDGER_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "batch_key": (str,),
    "event": (str,),
    "input_file_id": (str,),
    "batch_id": (str,),
    "endpoint": (str,),
    "request_ids": (list,),
}


class BatchLedger(ResponseJournal):
    """The submitted batches, one event per line, written as durably as the journal.

    Events per ``batch_key``: ``uploaded`` (input file id, endpoint, request ids),
    ``created`` (batch id), ``collected`` (its answers are in the journal).
    """

    key = "batch_key"
    field_types = LEDGER_FIELD_TYPES

    @classmethod
    def beside(cls, journal: ResponseJournal) -> BatchLedger:
        """``<journal stem>.batches.jsonl`` next to the journal."""
        return cls(journal.path.with_name(f"{journal.path.stem}.batches.jsonl"))

    @property
    def inputs_dir(self) -> Path:
        """Where the input JSONL files are kept (what was uploaded; vLLM's run_batch reads them)."""
        return self.path.with_name(self.path.name.removesuffix(".jsonl"))

    def open_batches(self) -> list[SubmittedBatch]:
        """Batches uploaded but not yet collected, in submission order."""
        batches: dict[str, SubmittedBatch] = {}
        for record in self.records():
            key = str(record["batch_key"])
            if record["event"] == "uploaded":
                batches[key] = SubmittedBatch(
                    batch_key=key,
                    input_file_id=str(record["input_file_id"]),
                    endpoint=str(record["endpoint"]),
                    request_ids=[str(r) for r in record["request_ids"]],
                )
            elif record["event"] == "created" and key in batches:
                batches[key].batch_id = str(record["batch_id"])
            elif record["event"] == "collected":
                batches.pop(key, None)
        return list(batches.values())


@dataclass
class SubmittedBatch:
    """One input file on the server and, once created, its batch."""

    batch_key: str
    input_file_id: str
    endpoint: str
    request_ids: list[str]
    batch_id: str | None = None


@dataclass
class BatchReport:
    """What the Batch API did, summed over the calls of one run (for the summary)."""

    batches_submitted: int = 0
    batches_resumed: int = 0
    items_submitted: int = 0
    items_answered: int = 0
    items_failed: int = 0  # error lines, non-200 items, unusable bodies
    items_without_output: int = 0  # expired or lost items: no usable line at all
    items_imported: int = 0  # answers read from import_outputs
    items_written_offline: int = 0  # submit: false, written to an input file
    lines_malformed: int = 0  # output lines that are not JSON or name no known request
    follow_up_batches: int = 0  # batches of failed or expired items, within the call
    items_resubmitted: int = 0  # items put into those follow-up batches
    batch_states: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {**self.__dict__, "batch_states": dict(self.batch_states)}


def input_line(backend: OpenAIBackend, request: LLMRequest, endpoint: str) -> bytes:
    """One Batch input line: the request id and the body the backend would send."""
    line = {
        "custom_id": request.request_id,
        "method": "POST",
        "url": endpoint,
        "body": backend.request_body(request),
    }
    return json.dumps(line, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"


def split_into_files(
    lines: Sequence[tuple[str, bytes]], max_requests: int, max_bytes: int
) -> list[list[tuple[str, bytes]]]:
    """Consecutive ``(request id, line)`` groups within both per-file limits."""
    files: list[list[tuple[str, bytes]]] = []
    size = 0
    for request_id, line in lines:
        if len(line) > max_bytes:
            raise ValueError(
                f"request {request_id} alone is {len(line)} bytes, over "
                f"max_bytes_per_file ({max_bytes})"
            )
        if not files or len(files[-1]) >= max_requests or size + len(line) > max_bytes:
            files.append([])
            size = 0
        files[-1].append((request_id, line))
        size += len(line)
    return files


def parse_output_line(
    raw: bytes, api: Literal["chat", "completion"], model: str
) -> tuple[str, LLMResponse] | None:
    """``(custom_id, answer or failure)`` for one output or error line; None if malformed."""
    try:
        line = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        return None
    request_id = line["custom_id"]
    now = time.time()
    response = line.get("response")
    error = line.get("error")
    if isinstance(response, dict) and response.get("status_code") == 200:
        try:
            return request_id, response_from_body(
                response.get("body"), request_id, api, model, started=now
            )
        except LLMError as problem:
            error = {"code": "malformed_body", "message": str(problem)}
    if not isinstance(error, dict) and isinstance(response, dict):
        body = response.get("body")
        error = body.get("error") if isinstance(body, dict) else None
        status = response.get("status_code")
        error = {"code": f"HTTP {status}", **(error if isinstance(error, dict) else {})}
    detail = error if isinstance(error, dict) else {}
    message = f"{BATCH_ITEM_PREFIX}{detail.get('code')}: {detail.get('message')}"
    return request_id, LLMResponse.failure(request_id, model, message)


class _BatchRun:
    """One call's worth of state: the client, the ledger, the budget, the counts."""

    def __init__(
        self,
        *,
        backend: OpenAIBackend,
        journal: ResponseJournal,
        settings: BatchSettings,
        budget: SpendBudget,
        report: BatchReport,
        progress: RunProgress | None,
    ):
        self.backend = backend
        self.client = backend.client_for_this_loop()
        self.journal = journal
        self.ledger = BatchLedger.beside(journal)
        self.settings = settings
        self.budget = budget
        self.report = report
        self.progress = progress
        self.rng = random.Random()
        # How many batches each request id was put into by this call (its tries).
        self.tries: dict[str, int] = {}

    async def call(self, what: str, make_call: Callable[[], Awaitable[T]]) -> T:
        """One files / batches API call, retried like a request (429, 5xx, network)."""
        policy = self.backend.retry_policy
        attempt = 0
        while True:
            attempt += 1
            try:
                return await make_call()
            except openai.APIStatusError as error:
                if not retryable_status(error.status_code):
                    raise
                failure: Exception = error
            except openai.APIConnectionError as error:  # timeouts included
                failure = error
            if attempt > policy.max_retries:
                raise failure
            delay = backoff_s(attempt, policy, None, self.rng)
            logger.info(
                "batch API: %s failed (%s); retry in %.2fs", what, failure, delay
            )
            await asyncio.sleep(delay)

    async def submit(self, lines: list[tuple[str, bytes]]) -> SubmittedBatch:
        """Upload one input file, journal its id, then create its batch."""
        key = f"batch-{uuid.uuid4().hex[:16]}"
        data = b"".join(line for _, line in lines)
        path = self.write_input_file(f"{key}.jsonl", data)
        uploaded = await self.call(
            "files.create",
            lambda: self.client.files.create(
                file=(path.name, data, "application/jsonl"), purpose="batch"
            ),
        )
        for request_id, _ in lines:
            self.tries[request_id] = self.tries.get(request_id, 0) + 1
        submitted = SubmittedBatch(
            batch_key=key,
            input_file_id=uploaded.id,
            endpoint=self.settings.endpoint,
            request_ids=[request_id for request_id, _ in lines],
        )
        # Durable before the batch exists: after a kill, the input file finds the batch.
        self.ledger.append(
            {
                "batch_key": key,
                "event": "uploaded",
                "input_file_id": submitted.input_file_id,
                "endpoint": submitted.endpoint,
                "request_ids": submitted.request_ids,
                "input_file": path.name,
            }
        )
        await self.create(submitted, look_up=False)
        self.report.batches_submitted += 1
        self.report.items_submitted += len(lines)
        return submitted

    async def create(self, submitted: SubmittedBatch, *, look_up: bool) -> None:
        """The batch on an uploaded file; ``look_up`` first finds one a killed run made."""
        batch_id = None
        if look_up:
            async for batch in self.client.batches.list(limit=100):
                if batch.input_file_id == submitted.input_file_id:
                    batch_id = batch.id
                    break
        if batch_id is None:
            created: Batch = await self.call(
                "batches.create",
                lambda: self.client.batches.create(
                    input_file_id=submitted.input_file_id,
                    endpoint=submitted.endpoint,  # type: ignore[arg-type]
                    completion_window=COMPLETION_WINDOW,
                    metadata={"belle_batch_key": submitted.batch_key},
                ),
            )
            batch_id = created.id
        submitted.batch_id = batch_id
        self.ledger.append(
            {"batch_key": submitted.batch_key, "event": "created", "batch_id": batch_id}
        )

    async def download(self, file_id: str | None) -> list[bytes]:
        """The lines of an output or error file (none when the batch has no such file)."""
        if not file_id:
            return []
        content = await self.call(
            "files.content", lambda: self.client.files.content(file_id)
        )
        return [line for line in content.content.split(b"\n") if line.strip()]

    def journal_answer(
        self,
        response: LLMResponse,
        batch_id: str,
        requests: dict[str, LLMRequest],
        results: dict[str, LLMResponse],
    ) -> None:
        """Append one answer (or failure) from a batch, tagged with where it came from."""
        request = requests.get(response.request_id)
        record = (
            journal_record(request, response, self.settings.body)
            if request is not None
            # asked for by an earlier plan: its request is not at hand
            else {**response.to_record(), "api": self.settings.body}
        )
        self.journal.append({**record, "batch_id": batch_id}, sync=False)
        if request is not None:
            self.budget.settle(request, response)
            results[response.request_id] = response
            if self.progress is not None:
                self.progress.record(response)

    def import_outputs(
        self, requests: dict[str, LLMRequest], results: dict[str, LLMResponse]
    ) -> None:
        """Journal the answers in ``import_outputs`` files (vLLM's run_batch, offline)."""
        for name in self.settings.import_outputs:
            path = Path(name)
            if not path.is_file():
                raise FileNotFoundError(
                    f"batch.import_outputs: no file {path} (a Batch output JSONL)"
                )
            for raw in path.read_bytes().splitlines():
                if not raw.strip():
                    continue
                parsed = parse_output_line(raw, self.settings.body, self.backend.model)
                if parsed is None:
                    self.report.lines_malformed += 1
                    continue
                request_id, response = parsed
                stored = results.get(request_id)
                if (
                    request_id in requests
                    and response.ok
                    and not (stored and stored.ok)
                ):
                    self.journal_answer(
                        response, f"import:{path.name}", requests, results
                    )
                    self.report.items_imported += 1
        self.journal.sync()

    def write_input_file(self, name: str, data: bytes) -> Path:
        """An input file in the ledger's folder, written atomically."""
        self.ledger.inputs_dir.mkdir(parents=True, exist_ok=True)
        path = self.ledger.inputs_dir / name
        write_atomic(path, data)
        return path

    def write_offline(self, lines: list[tuple[str, bytes]]) -> Path:
        """``submit: false``: the input file only, named by its requests (a rerun rewrites it)."""
        digest = hashlib.sha256("\n".join(rid for rid, _ in lines).encode()).hexdigest()
        return self.write_input_file(
            f"offline-{digest[:16]}.jsonl", b"".join(line for _, line in lines)
        )

    async def collect(
        self,
        submitted: SubmittedBatch,
        batch: Any,
        requests: dict[str, LLMRequest],
        results: dict[str, LLMResponse],
    ) -> None:
        """Journal a finished batch's answers and failures, then mark it collected."""
        lines = await self.download(batch.output_file_id)
        lines += await self.download(batch.error_file_id)
        expected = set(submitted.request_ids)
        answered: dict[str, LLMResponse] = {}
        for raw in lines:
            parsed = parse_output_line(raw, self.settings.body, self.backend.model)
            if parsed is None or parsed[0] not in expected:
                self.report.lines_malformed += 1
                continue
            request_id, response = parsed
            previous = answered.get(request_id)
            if previous is None or not previous.ok:
                answered[request_id] = response
        done = self.journal.done_ids()
        for request_id in submitted.request_ids:
            # A batch resumed from the ledger was this item's try too: recorded, so its
            # follow-ups count on from it (at most 1 + max_retries in all).
            tries = self.tries.setdefault(request_id, 1)
            if request_id not in answered:
                self.report.items_without_output += 1
                self.unanswered(requests.get(request_id), tries, results)
                continue
            response = dataclasses.replace(answered[request_id], attempts=tries)
            if response.ok:
                self.report.items_answered += 1
            else:
                self.report.items_failed += 1
            if request_id in done:  # journaled before a kill; the answer is the same
                continue
            self.journal_answer(response, str(submitted.batch_id), requests, results)
        self.journal.sync()
        self.ledger.append(
            {
                "batch_key": submitted.batch_key,
                "event": "collected",
                "batch_id": str(submitted.batch_id),
                "status": batch.status,
            }
        )
        self.report.batch_states[batch.status] = (
            self.report.batch_states.get(batch.status, 0) + 1
        )

    def unanswered(
        self,
        request: LLMRequest | None,
        tries: int,
        results: dict[str, LLMResponse],
    ) -> None:
        """An item no line answered: a failure in ``results`` (not journaled), its hold freed."""
        if request is None or (
            request.request_id in results and results[request.request_id].ok
        ):
            return
        failure = LLMResponse.failure(
            request.request_id, self.backend.model, NO_OUTPUT, attempts=tries
        )
        self.budget.settle(request, failure)
        results[request.request_id] = failure

    async def follow_up(
        self,
        finished: list[SubmittedBatch],
        requests: dict[str, LLMRequest],
        results: dict[str, LLMResponse],
    ) -> list[SubmittedBatch]:
        """Submit the failed and expired items of ``finished`` again; the new batches.

        An item whose tries reached ``1 + max_retries``, or that the spend limit holds
        back (``NOT_SENT_OVER_BUDGET``), is not submitted.
        """
        max_tries = 1 + self.backend.retry_policy.max_retries
        lines: list[tuple[str, bytes]] = []
        for request_id in dict.fromkeys(r for b in finished for r in b.request_ids):
            request = requests.get(request_id)
            if request is None or results[request_id].ok:
                continue
            if self.tries[request_id] >= max_tries:
                continue
            if not self.budget.reserve(request):
                results[request_id] = not_sent_over_budget(request, self.backend.model)
                continue
            lines.append(
                (request_id, input_line(self.backend, request, self.settings.endpoint))
            )
        if not lines:
            return []
        logger.warning(
            "batch: %d item(s) failed or expired; submitting them again "
            "(follow-up batch, try %d of at most %d)",
            len(lines),
            max(self.tries[rid] for rid, _ in lines) + 1,
            max_tries,
        )
        batches = [
            await self.submit(group)
            for group in split_into_files(
                lines,
                self.settings.max_requests_per_file,
                self.settings.max_bytes_per_file,
            )
        ]
        self.report.follow_up_batches += len(batches)
        self.report.items_resubmitted += len(lines)
        return batches

    async def wait_for(
        self,
        open_batches: list[SubmittedBatch],
        requests: dict[str, LLMRequest],
        results: dict[str, LLMResponse],
    ) -> None:
        """Poll until every batch is finished, collecting each as it finishes."""
        waiting = {b.batch_id: b for b in open_batches if b.batch_id is not None}
        bar = tqdm(
            total=sum(len(b.request_ids) for b in waiting.values()),
            desc="batch",
            unit="req",
            dynamic_ncols=True,
        )
        quiet_polls = 0
        last_seen: tuple[Any, ...] = ()
        try:
            while waiting:
                running = 0  # items done in the batches still open
                states: list[str] = []
                for batch_id, submitted in list(waiting.items()):
                    batch = await self.call(
                        "batches.retrieve",
                        functools.partial(self.client.batches.retrieve, batch_id),
                    )
                    states.append(batch.status)
                    if batch.status in TERMINAL_STATES:
                        await self.collect(submitted, batch, requests, results)
                        del waiting[batch_id]
                        bar.update(len(submitted.request_ids))
                    elif batch.request_counts is not None:
                        counts = batch.request_counts
                        running += counts.completed + counts.failed
                bar.set_postfix(
                    open=len(waiting),
                    in_open_done=running,
                    states=",".join(sorted(set(states))),
                    refresh=False,
                )
                bar.refresh()
                if not waiting:
                    break
                # Back off while nothing moves; poll at the base rate once it does.
                seen = (len(waiting), running, tuple(states))
                quiet_polls = quiet_polls + 1 if seen == last_seen else 0
                last_seen = seen
                await asyncio.sleep(
                    min(
                        self.settings.poll_max_interval_s,
                        self.settings.poll_interval_s * 2**quiet_polls,
                    )
                )
        finally:
            bar.close()


async def collect_batch_responses(
    backend: OpenAIBackend,
    requests: Sequence[LLMRequest],
    journal: ResponseJournal,
    limits: RequestLimits,
    *,
    settings: BatchSettings,
    report: BatchReport,
    progress: RunProgress | None = None,
) -> dict[str, LLMResponse]:
    """Answers for every request id through the Batch API, submitting only the new.

    Like :func:`~belle_kedro.llm.runner.collect_responses`: stored answers are reused,
    a request in a batch still open is waited for, never submitted again, and a
    request the spend limit holds back comes back unsent (``NOT_SENT_OVER_BUDGET``).
    ``limits.prices`` should already be the batch prices. Failed and expired items
    go into follow-up batches (at most the backend's ``max_retries``); a request still
    without a usable answer comes back with ``error`` set and ``attempts`` its tries,
    and a later call submits it again.
    """
    unique, results, budget = stored_state(requests, journal, limits)
    run = _BatchRun(
        backend=backend,
        journal=journal,
        settings=settings,
        budget=budget,
        report=report,
        progress=progress,
    )
    if progress is not None:
        for response in results.values():
            if response.ok:
                progress.record(response)
    run.import_outputs(unique, results)
    # Offline (submit: false) the API is never called, open batches included.
    open_batches = run.ledger.open_batches() if settings.submit else []
    in_open = {rid for b in open_batches for rid in b.request_ids}
    report.batches_resumed += len(open_batches)
    answered = {request_id for request_id, r in results.items() if r.ok}
    for request_id in (in_open & set(unique)) - answered:
        budget.hold(unique[request_id])
    sendable: list[tuple[str, bytes]] = []
    for request in unique.values():
        if request.request_id in in_open or request.request_id in answered:
            continue
        if budget.reserve(request):
            sendable.append(
                (request.request_id, input_line(backend, request, settings.endpoint))
            )
        else:
            results[request.request_id] = not_sent_over_budget(request, backend.model)
    files = split_into_files(
        sendable, settings.max_requests_per_file, settings.max_bytes_per_file
    )
    if not settings.submit:
        for lines in files:
            path = run.write_offline(lines)
            logger.info("batch: %d request(s) written to %s", len(lines), path)
            report.items_written_offline += len(lines)
            for request_id, _ in lines:
                results[request_id] = LLMResponse.failure(
                    request_id, backend.model, NOT_SUBMITTED, attempts=0
                )
        return {request_id: results[request_id] for request_id in unique}
    for submitted in open_batches:
        if submitted.batch_id is None:  # killed between upload and create
            await run.create(submitted, look_up=True)
    for lines in files:
        open_batches.append(await run.submit(lines))
    while open_batches:
        await run.wait_for(open_batches, unique, results)
        open_batches = await run.follow_up(open_batches, unique, results)
    return {request_id: results[request_id] for request_id in unique}
