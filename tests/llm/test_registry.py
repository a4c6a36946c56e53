"""LLM blocks: a registry of backends, each with only its own keys; secrets never parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from belle_kedro.common.config import ParameterError, build
from belle_kedro.llm.client import open_client
from belle_kedro.llm.local_backend import LocalBackend
from belle_kedro.llm.offline_model import offline_model_path
from belle_kedro.llm.openai_backend import OpenAIBackend
from belle_kedro.llm.runner import TokenPrices
from belle_kedro.llm.settings import LLMSettings
from tests.support.llm import llm_settings
from tests.support.project import declared

OPENAI = {"backend": "openai", "model": "m", "openai": {"api_key_env": "MY_KEY"}}


def test_openai_key_from_credentials_wins_over_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_KEY", "from-env")
    settings = llm_settings(**OPENAI)
    backend = open_client(settings, {"api_key": "from-credentials"}, "g.llm").backend
    assert isinstance(backend, OpenAIBackend)
    assert backend._api_key == "from-credentials"
    again = open_client(settings, {}, "g.llm").backend
    assert isinstance(again, OpenAIBackend) and again._api_key == "from-env"
    assert "from-" not in repr(backend)


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        open_client(llm_settings(backend="openai", model="m"), {}, "generate.llm")


@pytest.mark.parametrize(
    "where", [{"api_key": "sk-x"}, {"openai": {"api_key": "sk-x"}}]
)
def test_a_key_in_parameters_is_refused(where: dict) -> None:
    with pytest.raises(ParameterError, match="must not be a parameter"):
        llm_settings(backend="openai", **where)


def test_unknown_backend_api_and_sub_block_are_refused_naming_the_key() -> None:
    with pytest.raises(
        ParameterError, match=r"g.llm.backend: unknown LLM backend 'magic'"
    ):
        build(LLMSettings, declared("generate", "llm", backend="magic"), "g.llm")
    with pytest.raises(ParameterError, match=r"g.llm.api must be one of"):
        build(LLMSettings, declared("generate", "llm", api="embeddings"), "g.llm")
    with pytest.raises(
        ParameterError, match=r"unknown parameter\(s\) g.llm.vllm: .*registered"
    ):
        build(LLMSettings, declared("generate", "llm", vllm={}), "g.llm")
    with pytest.raises(ParameterError, match=r"g.llm.api 'batch' needs a backend"):
        build(LLMSettings, declared("generate", "llm", api="batch"), "g.llm")


def test_every_sub_block_is_checked_against_its_own_class_chosen_or_not() -> None:
    # The local backend is chosen; a misspelled openai key is still an error.
    block = declared("generate", "llm", openai={"time_out_s": 3})
    with pytest.raises(
        ParameterError, match=r"unknown parameter\(s\) g.llm.openai.time_out_s"
    ):
        build(LLMSettings, block, "g.llm")
    # A local key in the openai block (what a flat block allowed) is refused.
    block = declared("generate", "llm", openai={"model_path": "x"})
    with pytest.raises(ParameterError, match=r"g.llm.openai.model_path"):
        build(LLMSettings, block, "g.llm")
    incomplete = declared("generate", "llm")
    del incomplete["local"]["num_threads"]
    with pytest.raises(
        ParameterError, match=r"missing parameter\(s\) g.llm.local.num_threads"
    ):
        build(LLMSettings, incomplete, "g.llm")
    chosen_absent = declared("generate", "llm")
    del chosen_absent["local"]
    with pytest.raises(ParameterError, match=r"missing parameter\(s\) g.llm.local "):
        build(LLMSettings, chosen_absent, "g.llm")


def test_batch_opens_the_backend_speaking_the_batch_body() -> None:
    settings = llm_settings(
        backend="openai",
        api="batch",
        model="m",
        openai={"batch": {"body": "completion"}},
    )
    client = open_client(settings, {"api_key": "k"}, "g.llm")
    assert client.prompt_api == "completion" and client.batch is not None
    assert client.prices(TokenPrices(1.0, 1.0)).prompt_per_1k == 0.5


def test_local_default_is_the_smollm2_gguf_from_the_wheel() -> None:
    backend = open_client(llm_settings(), {}, "generate.llm").backend
    assert isinstance(backend, LocalBackend)
    assert backend.model_path == offline_model_path()
    assert (
        backend.model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
        and backend.model_path.is_file()
    )
    assert backend.retry_policy.max_retries == 0


def test_local_missing_gguf_fails_clearly(tmp_path: Path) -> None:
    from belle_kedro.llm.local_backend import load_causal_lm

    with pytest.raises(FileNotFoundError, match="GGUF model file not found"):
        load_causal_lm(tmp_path / "absent.gguf")
