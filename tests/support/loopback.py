"""A temp project whose generate pipeline talks to the loopback OpenAI server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from tests.support.openai_server import Reply, prompt_text
from tests.support.project import make_project

LOOPBACK_ENV = "loopback"


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


# generate.batch for tests: small files (several batches per plan) and fast polls.
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
    project: Path, base_url: str, api: str = "chat", **overrides
) -> None:
    """``conf/loopback``: the base generate parameters switched to the openai backend.

    ``api="batch"`` goes through the server's Batch API with :data:`TEST_BATCH`.
    """
    params = yaml.safe_load(
        (project / "conf" / "base" / "parameters_generate.yml").read_text("utf-8")
    )
    generate = params["generate"]
    generate["llm"] = {
        "backend": "openai",
        "api": api,
        "model": "loopback-model",
        "base_url": base_url,
        "api_key_env": "BELLE_TEST_KEY",
        "timeout_s": 5,
        "max_retries": 3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    generate.update(
        num_instructions_to_generate=12,
        max_requests=10,
        max_in_flight=4,
        tasks_per_request=3,
        price_per_1k_tokens={"prompt": 0.5, "completion": 1.5},
        batch=dict(TEST_BATCH),
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
