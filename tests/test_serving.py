"""``mlflow models serve -m models:/<name>@champion`` answers through the shared template."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

QUESTION = "你好"
TEMPLATED_ANSWER = "我是小模型"
BARE_ANSWER = "无模板"  # what the model says when the template is NOT applied
STARTUP_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(server: subprocess.Popen) -> None:
    """Stop the server's whole process group (it may already have exited)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def _wait_until_up(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"mlflow models serve exited with {process.returncode}"
            )
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/ping", timeout=2
            ) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(
        f"mlflow models serve did not come up within {STARTUP_TIMEOUT_S}s"
    )


@pytest.mark.slow
def test_champion_alias_serves_answers_through_the_shared_template(
    mlflow_store: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from belle_kedro.common.template import build_prompt
    from tests.support.models import (
        REGISTERED_MODEL,
        memorising_bloom,
        register_variants,
        smollm2_tokenizer,
        use_store,
    )

    use_store(mlflow_store, os.environ["BELLE_MLFLOW_ARTIFACTS"])
    tokenizer = smollm2_tokenizer()
    # Taught two answers: one after the shared template, another after the bare question,
    # so the reply tells which prompt the server built.
    model = memorising_bloom(
        tokenizer, [(build_prompt(QUESTION), TEMPLATED_ANSWER), (QUESTION, BARE_ANSWER)]
    )
    record = register_variants(tokenizer, {"small": 1}, {"small": model})["small"]
    MlflowClient().set_registered_model_alias(
        REGISTERED_MODEL, "champion", record["version"]
    )

    port = _free_port()
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "models", "serve",
                "-m", f"models:/{REGISTERED_MODEL}@champion",
                "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            ],
            # mlflow execs `uvicorn` by name: the venv's bin must be on PATH even when the
            # venv is not activated (CI calls .venv/bin/python directly).
            env={
                **os.environ,
                "MLFLOW_TRACKING_URI": mlflow_store,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so its workers stop with it
        )  # fmt: skip
        try:
            _wait_until_up(server, port)
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=json.dumps({"inputs": [QUESTION]}, ensure_ascii=False).encode(
                    "utf-8"
                ),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                predictions = json.loads(response.read())["predictions"]
        except AssertionError:
            raise AssertionError(log_path.read_text(errors="replace")[-3000:]) from None
        finally:
            _stop(server)

    assert [answer.strip() for answer in predictions] == [TEMPLATED_ANSWER]
