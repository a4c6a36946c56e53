"""Send many requests concurrently, retry what can be retried, journal every answer.

:func:`collect_responses` is the ``chat`` / ``completion`` transport of
:class:`belle_kedro.llm.client.LLMClient` (generate and the evaluate judge):

* at most ``max_in_flight`` requests are outstanding at once (a fixed pool of workers);
* optional requests/minute and tokens/minute budgets (token buckets);
* an optional spend limit (``max_cost_usd``): no request is sent once the journal's
  cost plus the worst case of those in flight would pass it;
* retryable failures (429 with ``Retry-After``, 5xx, connection errors, timeouts,
  malformed bodies) are retried with exponential backoff and jitter;
* each answer is appended to the journal (fsynced) the moment it arrives, so a killed
  run loses nothing it received, and ids already in the journal are never sent again;
* the journal holds disk space for the answers in flight: when its disk fills, nothing
  more is sent, those answers are journaled and the run ends (``JournalWriteError``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from belle_kedro.llm.base import (
    UNSET_MAX_TOKENS,
    LLMBackend,
    LLMError,
    LLMRequest,
    LLMResponse,
    RetryPolicy,
)
from belle_kedro.llm.journal import RESERVE_PER_ANSWER, ResponseJournal

logger = logging.getLogger(__name__)


class RunProgress:
    """A live bar: requests done, items parsed, tokens, retries and errors.

    Pass one instance to several ``collect_responses`` calls to keep one bar across
    them; ``count_items`` turns a response into the number of items it yields.
    """

    def __init__(
        self,
        description: str,
        total: int | None = None,
        *,
        count_items: Callable[[LLMResponse], int] | None = None,
        items_label: str = "parsed",
    ):
        self.bar = tqdm(total=total, desc=description, unit="req", dynamic_ncols=True)
        self.count_items = count_items
        self.items_label = items_label
        self.items = 0
        self.tokens = 0
        self.retries = 0
        self.errors = 0

    def add_total(self, count: int) -> None:
        """Grow the bar's total when a new batch of requests is planned."""
        self.bar.total = (self.bar.total or 0) + count
        self.bar.refresh()

    def record(self, response: LLMResponse) -> None:
        """Count one response, sent now or found in the journal."""
        if response.ok:
            self.tokens += int(response.usage.get("total_tokens", 0))
            if self.count_items is not None:
                self.items += self.count_items(response)
        else:
            self.errors += 1
        self.bar.update(1)
        self._postfix()

    def retried(self) -> None:
        """Count one retry."""
        self.retries += 1
        self._postfix()

    def _postfix(self) -> None:
        postfix: dict[str, Any] = {}
        if self.count_items is not None:
            postfix[self.items_label] = self.items
        postfix.update(tokens=self.tokens, retries=self.retries, errors=self.errors)
        self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        """Finish the bar."""
        self.bar.close()


class TokenBucket:
    """``per_minute`` units refilled continuously; ``acquire`` waits for enough of them."""

    def __init__(self, per_minute: float):
        if per_minute <= 0:
            raise ValueError("a per-minute budget must be positive")
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate_per_s = per_minute / 60.0
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(
            self.capacity, self.level + (now - self._stamp) * self.rate_per_s
        )
        self._stamp = now

    async def acquire(self, amount: float) -> None:
        """Take ``amount`` (capped at the capacity), waiting in arrival order."""
        amount = min(float(amount), self.capacity)
        async with self._lock:
            self._refill()
            while self.level < amount:
                await asyncio.sleep((amount - self.level) / self.rate_per_s)
                self._refill()
            self.level -= amount

    def settle(self, extra: float) -> None:
        """Charge (or refund) the difference between an estimate and the real usage."""
        self._refill()
        self.level = min(self.capacity, self.level - extra)


def estimated_tokens(request: LLMRequest) -> int:
    """A pessimistic token estimate (about one token per CJK character) plus the answer."""
    prompt_chars = len(request.prompt) + len(request.system or "")
    return prompt_chars + int(request.params.get("max_tokens") or UNSET_MAX_TOKENS)


def backoff_s(
    attempt: int, policy: RetryPolicy, retry_after_s: float | None, rng: random.Random
) -> float:
    """Exponential backoff with jitter; a longer ``Retry-After`` wins."""
    exponential = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt - 1))
    jittered = exponential * rng.uniform(0.5, 1.0)
    return max(jittered, retry_after_s or 0.0)


def journal_record(
    request: LLMRequest, response: LLMResponse, api: str
) -> dict[str, Any]:
    """What the journal keeps for one answer: the response plus how it was asked for."""
    return {
        **response.to_record(),
        "api": api,
        "params": dict(request.params),
        "meta": dict(request.meta),
        "prompt_sha256": hashlib.sha256(
            f"{request.system or ''}\x00{request.prompt}".encode()
        ).hexdigest(),
        "recorded_at": time.time(),
    }


def stored_responses(
    records: Sequence[dict[str, Any]], ids: set[str]
) -> dict[str, LLMResponse]:
    """Latest stored answer per id among ``ids``; an answer beats a stored failure."""
    found: dict[str, LLMResponse] = {}
    for record in records:
        request_id = str(record["request_id"])
        if request_id not in ids:
            continue
        response = LLMResponse.from_record(record)
        previous = found.get(request_id)
        if previous is not None and previous.ok and not response.ok:
            continue
        found[request_id] = response
    return found


async def _attempt_until_done(
    backend: LLMBackend,
    request: LLMRequest,
    *,
    policy: RetryPolicy,
    budgets: tuple[TokenBucket | None, TokenBucket | None],
    progress: RunProgress | None,
    rng: random.Random,
) -> LLMResponse:
    requests_budget, tokens_budget = budgets
    started = time.time()
    attempt = 0
    while True:
        attempt += 1
        estimate = estimated_tokens(request)
        if requests_budget is not None:
            await requests_budget.acquire(1)
        if tokens_budget is not None:
            await tokens_budget.acquire(estimate)
        try:
            response = await backend.complete(request)
        except LLMError as error:
            failure: LLMError = error
        except Exception as error:  # a backend bug must not lose the other answers
            failure = LLMError(f"{type(error).__name__}: {error}", retryable=False)
        else:
            if tokens_budget is not None:
                tokens_budget.settle(
                    int(response.usage.get("total_tokens", estimate)) - estimate
                )
            return LLMResponse(**{**response.to_record(), "attempts": attempt})
        if failure.retryable and attempt <= policy.max_retries:
            delay = backoff_s(attempt, policy, failure.retry_after_s, rng)
            logger.info(
                "request %s attempt %d failed (%s); retrying in %.2fs",
                request.request_id,
                attempt,
                failure,
                delay,
            )
            if progress is not None:
                progress.retried()
            await asyncio.sleep(delay)
            continue
        logger.warning(
            "request %s failed after %d attempt(s): %s",
            request.request_id,
            attempt,
            failure,
        )
        return LLMResponse(
            request_id=request.request_id,
            text="",
            finish_reason=None,
            model=backend.model,
            usage={},
            started_at=started,
            finished_at=time.time(),
            attempts=attempt,
            error=str(failure),
        )


# The error of a request the spend limit kept from being sent; never journaled, so a
# rerun with a larger ``max_cost_usd`` sends it.
NOT_SENT_OVER_BUDGET = "not sent: max_cost_usd would be exceeded"


@dataclass(frozen=True)
class TokenPrices:
    """USD per 1K prompt and completion tokens (the cost estimate and the spend limit)."""

    prompt_per_1k: float
    completion_per_1k: float

    def scaled(self, factor: float) -> TokenPrices:
        """These prices times ``factor`` (the Batch API's discount)."""
        return TokenPrices(self.prompt_per_1k * factor, self.completion_per_1k * factor)

    def cost(self, usage: Mapping[str, Any]) -> float:
        """What an answer with this ``usage`` cost."""
        return (
            float(usage.get("prompt_tokens", 0)) * self.prompt_per_1k
            + float(usage.get("completion_tokens", 0)) * self.completion_per_1k
        ) / 1000

    def worst_case(self, request: LLMRequest) -> float:
        """The most a request can cost: the pessimistic prompt estimate, full answer."""
        completion = int(request.params.get("max_tokens") or UNSET_MAX_TOKENS)
        prompt = estimated_tokens(request) - completion
        return (
            prompt * self.prompt_per_1k + completion * self.completion_per_1k
        ) / 1000


@dataclass(frozen=True)
class RequestLimits:
    """How hard a run may press an API: requests in flight, per-minute budgets, spend.

    ``max_cost_usd`` caps the estimated cost of every answer in the journal (earlier
    runs included) plus the worst case of the requests in flight; ``None`` = no cap.
    """

    max_in_flight: int
    requests_per_minute: float | None
    tokens_per_minute: float | None
    max_cost_usd: float | None = None
    prices: TokenPrices = TokenPrices(0.0, 0.0)


class SpendBudget:
    """Spent plus reserved (in flight, at their worst case) never passes the limit.

    Once a request is refused no later one is sent, so a run stops at one point and a
    rerun with a larger limit continues from there.
    """

    def __init__(self, limits: RequestLimits, spent_usd: float):
        self.max_cost_usd = limits.max_cost_usd
        self.prices = limits.prices
        if self.max_cost_usd is not None and self.prices == TokenPrices(0.0, 0.0):
            raise ValueError(
                "max_cost_usd needs price_per_1k_tokens: with zero prices nothing is counted"
            )
        self.spent_usd = spent_usd
        self.reserved_usd = 0.0
        self.stopped = False

    def reserve(self, request: LLMRequest) -> bool:
        """Whether ``request`` may be sent; if so its worst case is held until settled."""
        if self.max_cost_usd is None:
            return True
        worst = self.prices.worst_case(request)
        if (
            self.stopped
            or self.spent_usd + self.reserved_usd + worst > self.max_cost_usd
        ):
            self.stopped = True
            return False
        self.reserved_usd += worst
        return True

    def hold(self, request: LLMRequest) -> None:
        """Reserve a request sent earlier and not yet answered (a batch still open)."""
        if self.max_cost_usd is not None:
            self.reserved_usd += self.prices.worst_case(request)

    def settle(self, request: LLMRequest, response: LLMResponse) -> None:
        """Replace the reservation by what the answer cost."""
        if self.max_cost_usd is not None:
            self.reserved_usd -= self.prices.worst_case(request)
        self.spent_usd += self.prices.cost(response.usage)


def not_sent_over_budget(request: LLMRequest, model: str) -> LLMResponse:
    """The failed answer returned (not journaled) for a request the limit held back."""
    return LLMResponse.failure(
        request.request_id, model, NOT_SENT_OVER_BUDGET, attempts=0
    )


def stored_state(
    requests: Sequence[LLMRequest], journal: ResponseJournal, limits: RequestLimits
) -> tuple[dict[str, LLMRequest], dict[str, LLMResponse], SpendBudget]:
    """The requests by id (first of each), their stored answers, and the spend so far."""
    unique: dict[str, LLMRequest] = {}
    for request in requests:
        unique.setdefault(request.request_id, request)
    records = journal.records()
    results = stored_responses(records, set(unique))
    # Everything the journal holds was paid for, whichever plan asked for it.
    budget = SpendBudget(
        limits, sum(limits.prices.cost(r.get("usage") or {}) for r in records)
    )
    return unique, results, budget


async def collect_responses(
    backend: LLMBackend,
    requests: Sequence[LLMRequest],
    journal: ResponseJournal,
    limits: RequestLimits,
    progress: str | RunProgress | None = None,
) -> dict[str, LLMResponse]:
    """Answers for every request id (stored ones plus new ones), sending only the new.

    Never raises for a failed or malformed answer: after the retries it is returned
    (and journaled) with ``error`` set, and a later call asks for it again. A request
    the spend limit held back comes back unsent with ``error`` set to
    :data:`NOT_SENT_OVER_BUDGET` and is not journaled. Call it
    through :func:`run_sync` from synchronous code.
    """
    max_in_flight = limits.max_in_flight
    requests_per_minute = limits.requests_per_minute
    tokens_per_minute = limits.tokens_per_minute
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    unique, results, budget = stored_state(requests, journal, limits)
    pending = [
        r
        for r in unique.values()
        if not (r.request_id in results and results[r.request_id].ok)
    ]
    policy = backend.retry_policy
    budgets = (
        TokenBucket(requests_per_minute) if requests_per_minute else None,
        TokenBucket(tokens_per_minute) if tokens_per_minute else None,
    )
    owns_bar = isinstance(progress, str)
    bar = (
        RunProgress(progress, total=len(unique))
        if isinstance(progress, str)
        else progress
    )
    if bar is not None:
        for response in results.values():
            if response.ok:
                bar.record(response)
    queue: asyncio.Queue[LLMRequest] = asyncio.Queue()
    for request in pending:
        queue.put_nowait(request)
    rng = random.Random()

    async def worker() -> None:
        # On reserve the disk is full: send nothing more, journal what is in flight.
        while not journal.on_reserve:
            try:
                request = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            if not budget.reserve(request):
                results[request.request_id] = not_sent_over_budget(
                    request, backend.model
                )
                continue
            response = await _attempt_until_done(
                backend, request, policy=policy, budgets=budgets, progress=bar, rng=rng
            )
            budget.settle(request, response)
            # Durable before anything else looks at it: a kill after this line loses nothing.
            journal.append(journal_record(request, response, backend.api), sync=False)
            unsynced.set()
            results[request.request_id] = response
            if bar is not None:
                bar.record(response)

    unsynced = asyncio.Event()

    async def group_commit() -> None:
        # The flushed record already survives SIGKILL; the fsync (power loss) runs in a
        # thread, one for every record appended since the last, and no worker waits on
        # the disk before sending its next request.
        while True:
            await unsynced.wait()
            unsynced.clear()
            await asyncio.to_thread(journal.sync)

    workers = min(max_in_flight, len(pending))
    try:
        # Made before anything is sent: without room for the answers in flight, the run
        # refuses to start rather than pay for answers it may not keep.
        with journal.reserved(workers * RESERVE_PER_ANSWER):
            committer = asyncio.create_task(group_commit())
            try:
                await asyncio.gather(*(worker() for _ in range(workers)))
            finally:
                committer.cancel()
                await asyncio.to_thread(journal.sync)
    finally:
        if owns_bar and bar is not None:
            bar.close()
    if journal.on_reserve:
        raise journal.full_error()
    if budget.stopped:
        held_back = sum(1 for r in results.values() if r.error == NOT_SENT_OVER_BUDGET)
        logger.warning(
            "spend limit: %d request(s) not sent; $%.4f spent of max_cost_usd $%.4f",
            held_back,
            budget.spent_usd,
            budget.max_cost_usd,
        )
    return {request_id: results[request_id] for request_id in unique}


def run_sync(coroutine: Any) -> Any:
    """``asyncio.run`` that also works when a loop is already running (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
