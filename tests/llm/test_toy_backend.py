"""Adding a backend touches llm/ and the YAML only: a toy one, registered here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from belle_kedro.common.config import Settings, build, setting
from belle_kedro.llm.base import ApiKind, LLMRequest, LLMResponse, RetryPolicy
from belle_kedro.llm.client import open_client
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.registry import register
from belle_kedro.llm.runner import RequestLimits, run_sync
from belle_kedro.llm.settings import LLMSettings


@dataclass(frozen=True)
class EchoSettings(Settings):
    shout: bool = setting("upper-case the echo")


class EchoBackend:
    def __init__(
        self, settings: EchoSettings, model: str | None, api: ApiKind, *_: Any
    ):
        self.model, self.api, self.shout = model or "echo", api, settings.shout
        self.retry_policy = RetryPolicy(0, 0.0, 0.0)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        text = request.prompt.upper() if self.shout else request.prompt
        now = time.time()
        return LLMResponse(request.request_id, text, "stop", self.model, {}, now, now)

    async def aclose(self) -> None: ...


register("echo", EchoSettings, EchoBackend)

BLOCK = """
backend: echo
api: chat
model: echo-1
echo: {shout: true}
"""


def test_a_registered_backend_is_configured_by_yaml_and_used_by_the_runner(
    tmp_path: Path,
) -> None:
    settings = build(LLMSettings, yaml.safe_load(BLOCK), "generate.llm")
    client = open_client(settings, {}, "generate.llm")
    journal = ResponseJournal(tmp_path / "journal.jsonl")
    requests = [LLMRequest("r0", "hello"), LLMRequest("r1", "world")]
    answers = run_sync(client.collect(requests, journal, RequestLimits(2, None, None)))
    assert {rid: a.text for rid, a in answers.items()} == {"r0": "HELLO", "r1": "WORLD"}
    assert journal.done_ids() == {"r0", "r1"} and answers["r0"].model == "echo-1"
