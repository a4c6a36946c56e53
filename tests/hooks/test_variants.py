"""Variants come from the session's configuration: --env and --params count, wheels work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kedro.framework.project import pipelines

from tests.support.project import REPO_ROOT, open_session


def _namespaces(stage: str) -> set[str]:
    return {
        node.namespace.split(".")[0]
        for node in pipelines[stage].nodes
        if node.namespace
    }


def test_an_env_that_adds_a_variant_gets_its_namespace(kedro_project: Path):
    env = kedro_project / "conf" / "bigger"
    env.mkdir()
    (env / "parameters_split.yml").write_text(
        yaml.safe_dump({"split": {"variant_sizes": {"xxlarge": 120}}}), encoding="utf-8"
    )
    with open_session(kedro_project, env="bigger") as session:
        session.load_context()
        for stage in ("train", "evaluate"):
            assert _namespaces(stage) == {
                "small",
                "medium",
                "large",
                "xlarge",
                "xxlarge",
            }
    # A later session in the same process gets its own variants back.
    with open_session(kedro_project) as session:
        session.load_context()
        assert _namespaces("train") == {"small", "medium", "large", "xlarge"}


def test_runtime_params_reorder_variants_by_size(kedro_project: Path):
    sizes = {"small": 96, "medium": 72, "large": 48, "xlarge": 24}
    with open_session(
        kedro_project, runtime_params={"split": {"variant_sizes": sizes}}
    ) as session:
        session.load_context()
        from belle_kedro.common.variants import variant_names

        assert variant_names() == ["xlarge", "large", "medium", "small"]


@pytest.mark.slow
def test_an_installed_wheel_finds_the_variants_and_the_project(
    kedro_project: Path, tmp_path: Path
):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(wheels), str(REPO_ROOT)], check=True
    )
    wheel = next(wheels.glob("belle_kedro-*.whl"))
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True
    )
    script = (
        "import belle_kedro, json\n"
        "from kedro.framework.startup import bootstrap_project\n"
        "from kedro.framework.session import KedroSession\n"
        "from kedro.framework.project import pipelines\n"
        "bootstrap_project('.')\n"
        "with KedroSession.create(project_path='.') as s:\n"
        "    ctx = s.load_context()\n"
        "    spaces = sorted({n.namespace for n in pipelines['train'].nodes})\n"
        "    uri = ctx.config_loader['mlflow']['server']['mlflow_tracking_uri']\n"
        "print(json.dumps([belle_kedro.__file__, spaces, uri]))\n"
    )
    env = {"PYTHONPATH": str(site), "PATH": str(Path(sys.executable).parent)}
    env.update(
        {
            k: v
            for k, v in __import__("os").environ.items()
            if k.startswith(("KEDRO", "MLFLOW", "HOME"))
        }
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=kedro_project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    module, spaces, uri = json.loads(result.stdout.strip().splitlines()[-1])
    assert module.startswith(str(site))  # the wheel, not the checkout
    assert spaces == ["large", "medium", "small", "xlarge"]
    assert uri == f"sqlite:///{kedro_project}/mlflow.db"
