"""Fixtures for evaluate: a temp Kedro project whose registry holds one tiny model per variant."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.pipelines.evaluate.models import register_variants, test_tokenizer, use_store


@pytest.fixture
def evaluate_project(tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tests/conftest.py's ``kedro_project`` plus the ``src/`` folder bootstrap_project needs.

    TODO(lead): drop this once ``kedro_project`` creates ``src/`` itself.
    """
    from kedro.framework.startup import bootstrap_project

    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy2(REPO_ROOT / name, project / name)
    # Only the catalogs evaluate reads (its own and train's model_version), so another
    # pipeline's catalog in progress cannot break these tests.
    shutil.copytree(
        REPO_ROOT / "conf",
        project / "conf",
        ignore=shutil.ignore_patterns("credentials.yml", "catalog_generate.yml", "catalog_clean.yml", "catalog_split.yml"),
    )
    for layer in sorted((REPO_ROOT / "data").iterdir()):
        (project / "data" / layer.name).mkdir(parents=True, exist_ok=True)
    for shipped in (REPO_ROOT / "data" / "01_raw").glob("*.json"):
        shutil.copy2(shipped, project / "data" / "01_raw" / shipped.name)
    monkeypatch.chdir(project)
    bootstrap_project(project)
    return project


@pytest.fixture
def registered_project(evaluate_project: Path, mlflow_store: str) -> tuple[Path, dict[str, dict[str, Any]]]:
    """``kedro_project`` plus a registered tiny BLOOM per variant and its ``<variant>.model_version``.

    The records are saved through the project's own catalog, exactly where train saves them.
    """
    from kedro.framework.session import KedroSession

    use_store(mlflow_store, os.environ["BELLE_MLFLOW_ARTIFACTS"])
    kedro_project = evaluate_project
    split = yaml.safe_load((kedro_project / "conf" / "base" / "parameters_split.yml").read_text(encoding="utf-8"))
    records = register_variants(test_tokenizer(), split["split"]["variant_sizes"])
    with KedroSession.create(project_path=kedro_project) as session:
        catalog = session.load_context().catalog
        for variant, record in records.items():
            catalog.save(f"{variant}.model_version", record)
    return kedro_project, records
