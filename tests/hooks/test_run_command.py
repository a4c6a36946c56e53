"""RunCommandHook: the command line, and the code's git commit read at run time."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from kedro.io import DataCatalog

from belle_kedro.hooks.run_command import (
    RUN_COMMAND,
    RunCommandHook,
    code_version,
    command_line,
)


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(folder), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A real git repository with one commit."""
    _git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", "code.py")
    _git(
        tmp_path,
        "-c", "user.name=t", "-c", "user.email=t@example.com",
        "commit", "-q", "-m", "one",
    )  # fmt: skip
    return tmp_path


def test_a_clean_checkout_gives_its_commit(checkout: Path) -> None:
    assert code_version(checkout) == {
        "commit": _git(checkout, "rev-parse", "HEAD"),
        "dirty": False,
    }


def test_uncommitted_changes_make_it_dirty(checkout: Path) -> None:
    (checkout / "code.py").write_text("x = 2\n")
    assert code_version(checkout)["dirty"] is True


def test_outside_a_checkout_the_commit_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "not_git").mkdir()
    # GIT_CEILING_DIRECTORIES keeps git from finding a repository above tmp_path.
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
        assert code_version(tmp_path / "not_git") == {"commit": None, "dirty": None}


def test_the_hook_puts_command_and_commit_in_the_catalog(checkout: Path) -> None:
    catalog = DataCatalog()
    RunCommandHook().before_pipeline_run(
        {
            "env": "belle",
            "runtime_params": {"split": {"seed": 7}},
            "project_path": str(checkout),
        },
        catalog,
    )
    record = catalog.load(RUN_COMMAND)
    assert record["command"] == 'kedro run --env=belle --params "split.seed=7"'
    assert record["commit"] == _git(checkout, "rev-parse", "HEAD")
    assert record["dirty"] is False
    assert command_line(None, None) == "kedro run"
