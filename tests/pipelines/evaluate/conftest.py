"""Fixtures for evaluate: score rows, and a temp Kedro project with one registered model per variant."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.pipelines.evaluate.rows import four_classes
from tests.support.models import register_variants, smollm2_tokenizer, use_store
from tests.support.project import open_session


@pytest.fixture
def registered_project(
    kedro_project: Path, mlflow_store: str
) -> tuple[Path, dict[str, dict[str, Any]]]:
    """``kedro_project`` plus a registered tiny BLOOM per variant and its ``<variant>.model_version``.

    The records are saved through the project's own catalog, exactly where train saves them.
    """

    use_store(mlflow_store, os.environ["BELLE_MLFLOW_ARTIFACTS"])
    split = yaml.safe_load(
        (kedro_project / "conf" / "base" / "parameters_split.yml").read_text(
            encoding="utf-8"
        )
    )
    records = register_variants(smollm2_tokenizer(), split["split"]["variant_sizes"])
    with open_session(kedro_project) as session:
        catalog = session.load_context().catalog
        for variant, record in records.items():
            catalog.save(f"{variant}.model_version", record)
    return kedro_project, records


@pytest.fixture
def scores() -> pd.DataFrame:
    """Two variants' score rows over four classes (see ``rows.four_classes``)."""
    return four_classes()
