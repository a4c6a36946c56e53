"""Train test fixtures: real tokenizers, and each test in its own folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from belle_kedro.pipelines.train.models import load_tokenizer
from tests.support.training import tiny_settings


@pytest.fixture(autouse=True)
def _in_the_tests_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """conf/base's relative ``data/`` paths (the token cache) land here, not in the repo."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def smollm2_tokenizer(tmp_path_factory):
    """SmolLM2's BPE tokenizer converted from the shipped GGUF (a real merges-based BPE)."""
    return load_tokenizer(
        dataclasses.replace(
            tiny_settings().model,
            tokenizer="smollm2_gguf",
            tokenizer_cache_dir=str(tmp_path_factory.mktemp("tok")),
        )
    )


@pytest.fixture(scope="session")
def byte_tokenizer():
    """conf/base's UTF-8 byte tokenizer."""
    return load_tokenizer(tiny_settings().model)
