"""Backend construction from config: keys come from credentials or the environment only."""

from __future__ import annotations

from pathlib import Path

import pytest

from belle_kedro.llm.factory import build_backend
from belle_kedro.llm.local_backend import LocalBackend
from belle_kedro.llm.offline_model import offline_model_path
from belle_kedro.llm.openai_backend import OpenAIBackend
from tests.support.project import backend_params


def test_openai_key_from_credentials_wins_over_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MY_KEY", "from-env")
    config = backend_params(
        backend="openai",
        model="m",
        api_key_env="MY_KEY",
        base_url="http://127.0.0.1:9/v1",
    )
    backend = build_backend(config, {"api_key": "from-credentials"}, "generate.llm")
    assert isinstance(backend, OpenAIBackend)
    assert backend._api_key == "from-credentials"
    assert build_backend(config, {}, "generate.llm")._api_key == "from-env"
    assert "from-" not in repr(backend)


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        build_backend(backend_params(backend="openai", model="m"), {}, "generate.llm")


def test_a_key_in_parameters_is_refused():
    with pytest.raises(ValueError, match="must not be a parameter"):
        build_backend(
            backend_params(backend="openai", api_key="sk-x"), {"api_key": "k"}, "g.llm"
        )


def test_unknown_backend_and_api_are_refused():
    with pytest.raises(
        ValueError, match=r"unknown LLM backend 'magic' \(g.llm.backend\)"
    ):
        build_backend(backend_params(backend="magic"), {}, "g.llm")
    with pytest.raises(ValueError, match="api must be"):
        build_backend(
            backend_params(backend="openai", api="embeddings"), {"api_key": "k"}, "g"
        )


def test_a_misspelled_or_missing_backend_key_names_its_dotted_key():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) g.llm.time_out_s"):
        build_backend(backend_params(time_out_s=3), {}, "g.llm")
    incomplete = backend_params()
    del incomplete["timeout_s"]
    with pytest.raises(ValueError, match=r"missing parameter\(s\) g.llm.timeout_s"):
        build_backend(incomplete, {}, "g.llm")


def test_local_default_is_the_smollm2_gguf_from_the_wheel():
    backend = build_backend(backend_params(), {}, "generate.llm")
    assert isinstance(backend, LocalBackend)
    assert backend.model_path == offline_model_path()
    assert (
        backend.model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
        and backend.model_path.is_file()
    )
    assert backend.retry_policy.max_retries == 0


def test_local_missing_gguf_fails_clearly(tmp_path: Path):
    from belle_kedro.llm.local_backend import load_causal_lm

    with pytest.raises(FileNotFoundError, match="GGUF model file not found"):
        load_causal_lm(tmp_path / "absent.gguf")
