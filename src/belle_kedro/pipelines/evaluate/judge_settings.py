"""Typed settings of the ``evaluate.judge`` block (defaults: conf/base/parameters_evaluate.yml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from belle_kedro.common.config import InvalidSetting, setting
from belle_kedro.llm.settings import LLMSettings, RequestLimitSettings


@dataclass(frozen=True)
class JudgeSettings(RequestLimitSettings):
    """The whole ``evaluate.judge`` block: on/off, the request layout, the backend."""

    enabled: bool = setting("judge every answer through backend")
    template: str = setting(
        "the request layout: conf/base/prompts/judge/<template>.yml (belle | ours)"
    )
    samples: int = setting("judge replies averaged per answer")
    max_answers: int | None = setting("judge only the first N answers per variant")
    system: str | None = setting("a system message (null: one user message)")
    request_params: dict[str, Any] = setting(
        "sent with every judge request (temperature, max_tokens); part of its id"
    )
    backend: LLMSettings = setting(
        "the judge's backend and transport (as generate.llm)"
    )

    def check(self) -> None:
        """Limits, and at least one sample per answer."""
        super().check()
        if self.samples < 1:
            raise InvalidSetting("samples", "must be at least 1")
