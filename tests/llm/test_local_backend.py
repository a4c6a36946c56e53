"""The offline default backend on the real SmolLM2 GGUF file (slow: ~20 s to load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from belle_kedro.llm.base import LLMRequest
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.local_backend import LocalBackend
from tests.support.llm import collect, local_backend


@pytest.mark.slow
def test_smollm2_answers_chat_and_completion_deterministically(tmp_path: Path):
    chat = local_backend("chat")
    params = {"max_tokens": 6, "temperature": 0.7, "top_p": 0.9, "seed": 11}
    requests = [
        LLMRequest("c0", "Name a colour.", system="Be brief.", params=params),
        LLMRequest("c1", "Name a colour.", system="Be brief.", params=params),
    ]
    out = collect(
        chat, requests, ResponseJournal(tmp_path / "chat.jsonl"), max_in_flight=2
    )
    assert all(r.ok for r in out.values())
    assert out["c0"].text == out["c1"].text  # same seed, same sample
    assert 1 <= out["c0"].usage["completion_tokens"] <= 6
    assert out["c0"].usage["prompt_tokens"] > 5
    assert out["c0"].finish_reason in {"stop", "length"}

    completion = local_backend("completion")
    assert isinstance(chat, LocalBackend) and isinstance(completion, LocalBackend)
    # Share the 20 s load; the api only changes the prompt.
    completion._loaded = chat._loaded
    greedy = LLMRequest("p0", "1, 2, 3, 4,", params={"max_tokens": 4, "temperature": 0})
    text = collect(
        completion, [greedy], ResponseJournal(tmp_path / "c.jsonl"), max_in_flight=1
    )
    assert text["p0"].ok and text["p0"].usage["completion_tokens"] == 4
    assert text["p0"].finish_reason == "length"
