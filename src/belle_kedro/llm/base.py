"""The one small interface every LLM backend speaks (generate and the judge share it).

Generate and the evaluate judge both reach a backend through
:func:`belle_kedro.llm.client.open_client`, which sends these requests through the
concurrent runner (:mod:`belle_kedro.llm.runner`) or the Batch API
(:mod:`belle_kedro.llm.batch`).

A backend does one attempt per ``complete`` call and reports failures by raising
``LLMError``; the runner owns retries, so every retry is observable and honours
``Retry-After``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

ApiKind = Literal["chat", "completion"]
# A request without ``max_tokens`` is answered with at most this many tokens (the local
# backend's limit, and the runner's estimate for a remote API's own default).
UNSET_MAX_TOKENS = 256


@dataclass(frozen=True)
class LLMRequest:
    """One paid call. ``request_id`` is deterministic, so a resumed run can skip it."""

    request_id: str
    prompt: str  # the user message (chat) or the whole prompt text (completion)
    system: str | None = None  # chat only
    params: dict[str, Any] = field(
        default_factory=dict
    )  # temperature, max_tokens, top_p, stop, seed
    meta: dict[str, Any] = field(
        default_factory=dict
    )  # e.g. seed ids; stored, never sent

    def chat_messages(self) -> list[dict[str, str]]:
        """The chat form: an optional system message, then the user's."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": self.prompt}]

    def completion_prompt(self) -> str:
        """The completion form: the system text (if any) before the prompt."""
        return self.prompt if not self.system else f"{self.system}\n\n{self.prompt}"


@dataclass(frozen=True)
class LLMResponse:
    """What came back for one request: everything needed to parse it again later.

    ``error`` is set (and ``text`` empty) when the request failed for good after the
    runner's retries; such a response is stored but not counted as done, so a rerun
    asks again.
    """

    request_id: str
    text: str
    finish_reason: str | None
    model: str
    usage: dict[str, int]  # prompt_tokens, completion_tokens, total_tokens
    started_at: float
    finished_at: float
    attempts: int = 1
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the model answered (a truncated answer still counts)."""
        return self.error is None

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict (the journal's record body)."""
        return asdict(self)

    @classmethod
    def failure(
        cls, request_id: str, model: str, error: str, *, attempts: int = 1
    ) -> LLMResponse:
        """A request that got no answer, stamped now (``attempts=0``: never sent)."""
        now = time.time()
        return cls(
            request_id=request_id,
            text="",
            finish_reason=None,
            model=model,
            usage={},
            started_at=now,
            finished_at=now,
            attempts=attempts,
            error=error,
        )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LLMResponse:
        """Rebuild from a journal record, ignoring the extra keys the journal adds."""
        usage = record.get("usage") or {}
        return cls(
            request_id=str(record["request_id"]),
            text=str(record.get("text") or ""),
            finish_reason=record.get("finish_reason"),
            model=str(record.get("model") or ""),
            usage={
                str(k): int(v) for k, v in usage.items() if isinstance(v, int | float)
            },
            started_at=float(record.get("started_at") or 0.0),
            finished_at=float(record.get("finished_at") or 0.0),
            attempts=int(record.get("attempts") or 1),
            error=record.get("error"),
        )


class LLMError(Exception):
    """One failed attempt. ``retryable`` says whether the runner should try again."""

    def __init__(
        self, message: str, *, retryable: bool, retry_after_s: float | None = None
    ):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class LLMBackend(Protocol):
    """A backend turns one request into one response; the runner adds concurrency."""

    model: str
    api: ApiKind
    retry_policy: RetryPolicy

    async def complete(self, request: LLMRequest) -> LLMResponse: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How the runner retries a retryable failure: exponential backoff with jitter.

    Attempt ``n`` (1-based) waits ``min(max, base * 2**(n-1))`` scaled by a random factor
    in [0.5, 1.0]; a server's ``Retry-After`` wins when it asks for longer.
    """

    max_retries: int
    backoff_base_s: float
    backoff_max_s: float


BATCH_ITEM_PREFIX = "batch item failed: "


class IncompleteRun(RuntimeError):
    """A run ended short for a reason nobody chose (requests failed or expired).

    Its message ends saying that a rerun resumes from the journal, paying nothing twice.
    """


def error_code(error: str) -> str:
    """The short code of a failure: ``batch_expired``, ``HTTP 500``, ``timeout``..."""
    return error.removeprefix(BATCH_ITEM_PREFIX).split(":", 1)[0].strip()[:40]


def failure_reason(failed: Sequence[LLMResponse]) -> str:
    """``N request(s) failed after K tries (code xN, ...)`` for requests that failed."""
    codes = Counter(error_code(r.error or "") for r in failed)
    tries = sorted({r.attempts for r in failed})
    after = str(tries[0]) if len(tries) == 1 else f"{tries[0]}-{tries[-1]}"
    listed = ", ".join(f"{code} x{n}" for code, n in codes.most_common())
    return f"{len(failed)} request(s) failed after {after} tries ({listed})"


# How an IncompleteRun message ends: what the user does next, and what it costs.
RESUME_HINT = (
    "Every answer received is in the journal; a rerun resumes from it, sending only "
    "the requests without an answer, so nothing is paid twice."
)
