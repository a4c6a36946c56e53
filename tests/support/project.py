"""A throw-away copy of this project (conf and shipped raw data) for Kedro sessions."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kedro.framework.session import KedroSession

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "zh_instructions"


def make_project(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    catalogs: Iterable[str] | None = None,
) -> Path:
    """A copy of this project's conf and shipped raw data in ``tmp_path/project``.

    ``catalogs`` keeps only those ``catalog_*.yml`` files (kedro-mlflow builds every
    catalog entry when a session starts, so a focused test can leave the others out).
    Run sessions against it with :func:`open_session`;
    nothing is written into the checkout. Tests may edit its ``conf/`` freely.
    """
    from kedro.framework.startup import bootstrap_project

    keep = set(catalogs) if catalogs is not None else None

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [
            name
            for name in names
            if name == "credentials.yml"
            or (keep is not None and name.startswith("catalog_") and name not in keep)
        ]

    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)  # bootstrap_project insists on it
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy2(REPO_ROOT / name, project / name)
    shutil.copytree(REPO_ROOT / "conf", project / "conf", ignore=ignore)
    for layer in sorted((REPO_ROOT / "data").iterdir()):
        (project / "data" / layer.name).mkdir(parents=True, exist_ok=True)
    for shipped in (REPO_ROOT / "data" / "01_raw").glob("*.json"):
        shutil.copy2(shipped, project / "data" / "01_raw" / shipped.name)
    monkeypatch.chdir(project)
    bootstrap_project(project)
    return project


@contextmanager
def open_session(project_path: Path, **options: Any) -> Iterator[KedroSession]:
    """``KedroSession.create(project_path=…, **options)`` as a typed context manager.

    (Kedro types ``__enter__`` as returning the abstract session, which lacks ``run``'s
    keyword arguments and ``load_context``.)
    """
    session = KedroSession.create(project_path=project_path, **options)
    with session:
        yield session


def base_parameters(pipeline: str, env: str = "base") -> dict:
    """``conf/<env>/parameters_<pipeline>.yml``'s block, as the project declares it."""
    import yaml

    path = REPO_ROOT / "conf" / env / f"parameters_{pipeline}.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))[pipeline]


def merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in recursively (as Kedro's soft merge does)."""
    result = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def declared(pipeline: str, block: str, **changes: Any) -> dict[str, Any]:
    """The declared ``<pipeline>.<block>`` parameters with nested ``changes`` merged in."""
    return merged(base_parameters(pipeline)[block], changes)
