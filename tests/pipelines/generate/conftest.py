"""Fixtures for generate: a temp project with its own MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.loopback import make_generate_project


@pytest.fixture
def generate_project(
    tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A temp project for generate, with its own MLflow store (``mlflow_store``)."""
    return make_generate_project(tmp_path, monkeypatch)
