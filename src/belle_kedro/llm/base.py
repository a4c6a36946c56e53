"""The one small interface every LLM backend speaks (generate and the judge share it).

Owner: generate helper. The evaluate pipeline's judge uses exactly these types plus the
concurrent, resumable runner in ``belle_kedro.llm.runner``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ApiKind = Literal["chat", "completion"]


@dataclass(frozen=True)
class LLMRequest:
    """One paid call. ``request_id`` is deterministic, so a resumed run can skip it."""

    request_id: str
    prompt: str  # the user message (chat) or the whole prompt text (completion)
    system: str | None = None  # chat only
    params: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, top_p, stop, seed
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. seed ids; stored, never sent


@dataclass(frozen=True)
class LLMResponse:
    """What came back for one request: everything needed to parse it again later."""

    request_id: str
    text: str
    finish_reason: str | None
    model: str
    usage: dict[str, int]  # prompt_tokens, completion_tokens, total_tokens
    started_at: float
    finished_at: float
    attempts: int = 1


class LLMBackend(Protocol):
    """A backend turns one request into one response; the runner adds concurrency."""

    model: str
    api: ApiKind

    async def complete(self, request: LLMRequest) -> LLMResponse: ...

    async def aclose(self) -> None: ...
