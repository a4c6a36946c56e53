"""Typed settings of the ``generate`` block (defaults: conf/base/parameters_generate.yml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from belle_kedro.common.config import InvalidSetting, setting
from belle_kedro.llm.settings import LLMSettings, RequestLimitSettings


@dataclass(frozen=True)
class GenerateSettings(RequestLimitSettings):
    """The whole ``generate`` block: the model, the sampling, the target and the limits."""

    llm: LLMSettings = setting("the backend and transport (llm/settings.py)")
    sampling: dict[str, Any] = setting(
        "sent with every request (temperature, top_p, max_tokens, stop); part of its id"
    )
    send_seed: bool = setting("send a per-request seed from (random_seed, index)")
    random_seed: int = setting("request i samples its seed tasks from (random_seed, i)")
    few_shot_k: int = setting("seed tasks shown per prompt (BELLE: 3)")
    tasks_per_request: int = setting("N in 'give me N tasks' (BELLE: 20)")
    num_instructions_to_generate: int = setting("parsed tasks wanted")
    max_requests: int = setting("hard cap on paid requests for this target")

    def check(self) -> None:
        """Limits, and a target the requests can reach."""
        super().check()
        for key in (
            "tasks_per_request",
            "max_requests",
            "num_instructions_to_generate",
        ):
            if getattr(self, key) < 1:
                raise InvalidSetting(key, "must be at least 1")
