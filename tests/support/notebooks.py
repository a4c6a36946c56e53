"""Run a project notebook top to bottom in a real kernel, as a user would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

from tests.support.project import REPO_ROOT


def run_notebook(name: str, cwd: Path, expose: str | None = None) -> tuple[Any, Any]:
    """Execute ``notebooks/<name>`` in ``cwd``; returns ``(notebook, exposed value)``.

    ``expose`` names a variable the notebook defines; a last cell prints it as JSON
    (DataFrames as records), so a test reads what the user saw, not a reprint of it.
    """
    notebook = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
    if expose:
        notebook.cells.append(
            nbformat.v4.new_code_cell(
                f"import json as _json, pandas as _pd\n"
                f"_value = {expose}\n"
                f"print(_value.to_json(orient='records') if isinstance(_value, _pd.DataFrame)"
                f" else _json.dumps(_value))"
            )
        )
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    if not expose:
        return notebook, None
    printed = "".join(
        output.get("text", "") for output in notebook.cells[-1].outputs
    ).strip()
    return notebook, json.loads(printed)
