"""Hands the release pipeline the command that started this run (env, ``--params``).

The cards state how to reproduce the data and models; the environment and the runtime
parameter overrides are known only to the session, and the code's version only to git
at run time, so this hook puts them in the catalog as the in-memory dataset
``run_command`` before any node runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset

RUN_COMMAND = "run_command"


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def command_line(env: str | None, runtime_params: dict[str, Any] | None) -> str:
    """The ``kedro run`` line giving the same parameters (default env: no ``--env``)."""
    parts = ["kedro run"]
    if env and env != "local":
        parts.append(f"--env={env}")
    overrides = _flatten(runtime_params or {})
    if overrides:
        joined = ",".join(f"{key}={value}" for key, value in sorted(overrides.items()))
        parts.append(f'--params "{joined}"')
    return " ".join(parts)


def _git(project: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(project), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):  # no git on PATH, or a hung one
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version(project: Path) -> dict[str, Any]:
    """The project's git commit and whether its tree has uncommitted changes.

    ``{"commit": None, "dirty": None}`` when ``project`` is not a git checkout (an
    unpacked archive, no git installed): the cards then say the commit is unknown.
    """
    commit = _git(project, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git(project, "status", "--porcelain")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


class RunCommandHook:
    """Puts ``run_command`` (env, overrides, the command line, the git commit) into the
    run's catalog."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], catalog: Any) -> None:
        env = run_params.get("env")
        overrides = run_params.get("runtime_params") or {}
        catalog[RUN_COMMAND] = MemoryDataset(
            {
                "env": env or "local",
                "runtime_params": _flatten(overrides),
                "pipelines": run_params.get("pipeline_names") or ["__default__"],
                "command": command_line(env, overrides),
                **code_version(Path(run_params.get("project_path") or ".")),
            }
        )
