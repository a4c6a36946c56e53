"""Backend construction from config: keys come from credentials or the environment only."""

from __future__ import annotations

from pathlib import Path

import pytest

from belle_kedro.llm.factory import build_backend
from belle_kedro.llm.local_backend import LocalBackend, default_model_path
from belle_kedro.llm.openai_backend import OpenAIBackend


def test_openai_key_from_credentials_wins_over_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MY_KEY", "from-env")
    config = {
        "backend": "openai",
        "model": "m",
        "api_key_env": "MY_KEY",
        "base_url": "http://127.0.0.1:9/v1",
    }
    backend = build_backend(config, {"api_key": "from-credentials"})
    assert isinstance(backend, OpenAIBackend)
    assert backend._api_key == "from-credentials"
    assert build_backend(config)._api_key == "from-env"
    assert "from-" not in repr(backend)


def test_missing_key_names_the_env_var(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        build_backend({"backend": "openai", "model": "m"})


def test_a_key_in_parameters_is_refused():
    with pytest.raises(ValueError, match="must not be a parameter"):
        build_backend(
            {"backend": "openai", "model": "m", "api_key": "sk-x"}, {"api_key": "k"}
        )


def test_unknown_backend_and_api_are_refused():
    with pytest.raises(ValueError, match="unknown LLM backend"):
        build_backend({"backend": "magic"})
    with pytest.raises(ValueError, match="api must be"):
        build_backend(
            {"backend": "openai", "model": "m", "api": "embeddings"}, {"api_key": "k"}
        )


def test_local_default_is_the_smollm2_gguf_from_the_wheel():
    backend = build_backend({"backend": "local"})
    assert isinstance(backend, LocalBackend)
    assert backend.model_path == default_model_path()
    assert (
        backend.model_path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
        and backend.model_path.is_file()
    )
    assert backend.retry_policy.max_retries == 0


def test_local_missing_gguf_fails_clearly(tmp_path: Path):
    from belle_kedro.llm.local_backend import load_causal_lm

    with pytest.raises(FileNotFoundError, match="GGUF model file not found"):
        load_causal_lm(tmp_path / "absent.gguf")
