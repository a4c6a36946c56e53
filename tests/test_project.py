"""The project as users meet it: pipeline names, the default run, kedro-viz offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kedro.framework.project import pipelines

from belle_kedro.common.variants import variant_names

STAGES = ("generate", "clean", "split", "train", "evaluate", "release")


def test_every_stage_is_a_pipeline_and_default_runs_them_all(
    kedro_project: Path,
) -> None:
    assert set(STAGES) <= set(pipelines)
    default_nodes = set(pipelines["__default__"].nodes)
    for stage in STAGES:
        assert set(pipelines[stage].nodes) <= default_nodes


def test_train_and_evaluate_have_one_namespace_per_variant(kedro_project: Path) -> None:
    names = variant_names()  # no session yet: read from the project in the cwd
    assert names == ["small", "medium", "large", "xlarge"]
    for stage in ("train", "evaluate"):
        namespaces = {
            node.namespace.split(".")[0]
            for node in pipelines[stage].nodes
            if node.namespace
        }
        assert namespaces == set(names), stage


@pytest.mark.slow
def test_kedro_viz_build_works_offline(kedro_project: Path) -> None:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}
    kedro = Path(sys.executable).with_name("kedro")
    result = subprocess.run(
        [str(kedro), "viz", "build"],
        check=False,
        cwd=kedro_project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    graph = json.loads(
        (kedro_project / "build" / "api" / "main").read_text(encoding="utf-8")
    )
    assert set(variant_names()) <= set(graph["modular_pipelines"])
    assert {p["id"] for p in graph["pipelines"]} >= {"__default__", *STAGES}
