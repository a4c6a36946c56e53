"""The generated-data notebook runs top to bottom against a project with generate output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.support.loopback import make_generate_project
from tests.support.notebooks import run_notebook


@pytest.fixture
def generate_project(
    tmp_path: Path, mlflow_store: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    return make_generate_project(tmp_path, monkeypatch)


@pytest.mark.slow
def test_notebook_loads_generated_instructions_through_the_catalog(
    generate_project: Path,
):
    rows = pd.DataFrame(
        {
            "instruction": ["把句子改写得更正式。", "列出三种常见的茶。"],
            "input": ["明天见哈", ""],
            "output": ["期待明日与您会面。", "绿茶、红茶、乌龙茶。"],
            "request_id": ["gen-1-0000000-a", "gen-1-0000000-a"],
            "model": ["m", "m"],
            "source": ["generate", "generate"],
        }
    )
    rows.to_parquet(
        generate_project / "data/02_intermediate/generated_instructions.parquet"
    )
    notebook, _ = run_notebook("generated_data.ipynb", generate_project)
    outputs = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "2 instructions from 1 responses" in outputs
    assert "with input: 50%" in outputs
    assert "列出三种常见的茶。" in outputs
