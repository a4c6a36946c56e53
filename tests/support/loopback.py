"""A temp project whose generate pipeline talks to the loopback OpenAI server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.openai_server import Reply, prompt_text
from tests.support.project import make_project, merged

LOOPBACK_ENV = "loopback"
JOURNAL = Path("data/01_raw/raw_responses.jsonl")
GENERATED = Path("data/02_intermediate/generated_instructions.parquet")
# A generate run in a fresh process (argv: project, env), for the SIGKILL tests.
KILL_SCRIPT = """
import sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
project = Path(sys.argv[1])
bootstrap_project(project)
with KedroSession.create(project_path=project, env=sys.argv[2]) as session:
    session.run(pipeline_names=["generate"])
"""


def run_generate(project: Path, env: str = LOOPBACK_ENV) -> None:
    import mlflow
    from kedro.framework.session import KedroSession

    # Entered without `as`: kedro types __enter__ as returning the abstract session.
    session = KedroSession.create(project_path=project, env=env)
    with session:
        session.run(pipeline_names=["generate"])
    # VariantChildRunHook pops the parent kedro-mlflow leaves on the stack: a run left
    # open here is that hook's regression, not something to tidy away.
    assert mlflow.active_run() is None, "the kedro run left an MLflow run open"


def latest_summary(project: Path) -> dict:
    versions = sorted((project / "data/08_reporting/generation_summary.json").iterdir())
    return json.loads((versions[-1] / "generation_summary.json").read_text("utf-8"))


def belle_reply(body: dict, endpoint: str, tasks: int = 3) -> Reply:
    """``tasks`` well-formed tasks in BELLE's answer format, derived from the prompt."""
    digest = hashlib.sha256(prompt_text(body).encode("utf-8")).hexdigest()
    blocks = []
    for number in range(4, 4 + tasks):
        tag = digest[number * 4 : number * 4 + 6]
        task_input = (
            "<无输入>" if number % 2 else f"素材{tag}：今天的会议改到下午三点。"
        )
        head = (
            f" 请为编号{tag}的任务写一句说明。"
            if number == 4
            else f"\n{number}. 指令: 解释代号{tag}的含义。"
        )
        blocks.append(
            f"{head}\n{number}. 输入:\n{task_input}\n{number}. 输出:\n这是关于{tag}的回答。\n"
        )
    return Reply(text="###".join(blocks))


# generate.llm.openai.batch for tests: small files (several batches per plan) and fast polls.
TEST_BATCH = {
    "body": "chat",
    "max_requests_per_file": 4,
    "max_bytes_per_file": 200_000_000,
    "poll_interval_s": 0.02,
    "poll_max_interval_s": 0.1,
    "discount": 0.5,
    "submit": True,
    "import_outputs": [],
}


def write_loopback_env(
    project: Path, base_url: str, api: str = "chat", **overrides: Any
) -> None:
    """``conf/loopback``: the base generate parameters switched to the openai backend.

    ``api="batch"`` goes through the server's Batch API with :data:`TEST_BATCH`.
    """
    params = yaml.safe_load(
        (project / "conf" / "base" / "parameters_generate.yml").read_text("utf-8")
    )
    generate = params["generate"]
    generate["llm"] = merged(
        generate["llm"],
        {
            "backend": "openai",
            "api": api,
            "model": "loopback-model",
            "openai": {
                "base_url": base_url,
                "api_key_env": "BELLE_TEST_KEY",
                "timeout_s": 5,
                "max_retries": 3,
                "backoff_base_s": 0.01,
                "backoff_max_s": 0.05,
                "batch": dict(TEST_BATCH),
            },
        },
    )
    generate.update(
        num_instructions_to_generate=12,
        max_requests=10,
        max_in_flight=4,
        tasks_per_request=3,
        price_per_1k_tokens={"prompt": 0.5, "completion": 1.5},
    )
    generate.update(overrides)
    env_dir = project / "conf" / LOOPBACK_ENV
    env_dir.mkdir(exist_ok=True)
    (env_dir / "parameters_generate.yml").write_text(
        yaml.safe_dump(params, allow_unicode=True), encoding="utf-8"
    )


def make_generate_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp project with only generate's catalog (the others play no part here)."""
    return make_project(tmp_path, monkeypatch, catalogs={"catalog_generate.yml"})
