"""The generate pipeline in real Kedro sessions against a loopback OpenAI server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kedro.io.core import DatasetError
from mlflow.tracking import MlflowClient

from belle_kedro.llm.journal import ResponseJournal
from tests.support.loopback import (
    GENERATED,
    JOURNAL,
    KILL_SCRIPT,
    LOOPBACK_ENV,
    belle_reply,
    latest_summary,
    run_generate,
    write_loopback_env,
)
from tests.support.openai_server import FakeOpenAIServer, Reply

SENTINEL_KEY = "sk-SENTINEL-9f8e7d6c5b4a-do-not-leak"


@pytest.mark.slow
def test_session_run_journals_parses_logs_to_mlflow_and_never_leaks_the_key(
    generate_project: Path,
    mlflow_store: str,
    capfd: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
):
    (generate_project / "conf/local/credentials.yml").write_text(
        f"openai:\n  api_key: {SENTINEL_KEY}\n", encoding="utf-8"
    )
    with FakeOpenAIServer(belle_reply, latency_s=0.02) as server:
        write_loopback_env(generate_project, server.base_url)
        run_generate(generate_project)
        # The redaction filter is live after the run too: a careless log line is masked.
        import logging

        logging.getLogger("belle_kedro.test").warning(
            "leaking %s on purpose", SENTINEL_KEY
        )
    assert server.api_keys_seen == {SENTINEL_KEY}  # the key was really used

    generated = pd.read_parquet(generate_project / GENERATED)
    assert len(generated) == 12  # 3 tasks per answer, 4 answers, cut at the target
    assert list(generated.columns[:3]) == ["instruction", "input", "output"]
    assert (generated["input"] == "").sum() > 0 and not generated.isna().any().any()
    assert generated["model"].unique().tolist() == ["loopback-model"]
    summary = latest_summary(generate_project)
    assert summary["requests_planned"] == 4 == len(server.requests)
    assert summary["instructions_parsed"] == 12 and summary["target_reached"]
    usage = summary["usage"]
    expected_cost = (
        usage["prompt_tokens"] / 1000 * 0.5 + usage["completion_tokens"] / 1000 * 1.5
    )
    assert summary["cost_estimate"] == pytest.approx(expected_cost, abs=1e-5)
    journal = ResponseJournal(generate_project / JOURNAL).records()
    assert len(journal) == 4
    assert {
        "request_id",
        "meta",
        "params",
        "text",
        "finish_reason",
        "usage",
        "started_at",
    } <= set(journal[0])
    assert len(journal[0]["meta"]["seed_ids"]) == 3

    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name("belle_kedro")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert runs, "kedro-mlflow opened no run"
    run = runs[0]
    assert run.data.params["generate.llm.backend"] == "openai"
    assert run.data.params["generate.sampling.temperature"] == "1.0"
    assert run.data.metrics["generate.instructions_parsed"] == 12
    assert run.data.metrics["generate.usage.total_tokens"] == usage["total_tokens"]

    # (f) The sentinel is nowhere: logs, MLflow params/tags, data files, artifacts.
    captured = capfd.readouterr()
    log_text = captured.out + captured.err + caplog.text
    assert "leaking *** on purpose" in caplog.text
    assert SENTINEL_KEY not in log_text
    for mlflow_run in runs:
        assert SENTINEL_KEY not in json.dumps(mlflow_run.data.params)
        assert SENTINEL_KEY not in json.dumps(mlflow_run.data.tags)
    artifact_root = Path(os.environ["BELLE_MLFLOW_ARTIFACTS"])
    scanned = [p for p in (generate_project / "data").rglob("*") if p.is_file()]
    scanned += [p for p in artifact_root.rglob("*") if p.is_file()]
    scanned += [p for p in generate_project.glob("*.log")]
    assert any(p.suffix == ".parquet" for p in scanned if artifact_root in p.parents)
    for path in scanned:
        assert SENTINEL_KEY.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(
    generate_project: Path, monkeypatch
):
    monkeypatch.setenv("BELLE_TEST_KEY", "test-key")
    reference = generate_project.parent / "reference"
    with FakeOpenAIServer(belle_reply, latency_s=0.3) as server:
        write_loopback_env(
            generate_project,
            server.base_url,
            num_instructions_to_generate=90,
            max_requests=40,
            max_in_flight=3,
        )
        shutil.copytree(generate_project, reference)

        run_generate(reference)  # the uninterrupted run
        sent_by_reference = len(server.requests)

        # The interrupted run: a separate process killed once some answers are stored.
        process = subprocess.Popen(
            [sys.executable, "-c", KILL_SCRIPT, str(generate_project), LOOPBACK_ENV],
            cwd=generate_project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        journal = ResponseJournal(generate_project / JOURNAL)
        deadline = time.monotonic() + 120
        while (
            len(journal.done_ids()) < 8
            and process.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        stored_at_kill = journal.done_ids()
        assert 8 <= len(stored_at_kill) < 30, "the kill came too late to test anything"
        sent_before_rerun = len(server.requests)

        run_generate(generate_project)  # resume
        resent = [r["client_request_id"] for r in server.requests[sent_before_rerun:]]

    assert not set(resent) & stored_at_kill  # nothing stored was asked for again
    assert len(resent) == len(set(resent))
    resumed = pd.read_parquet(generate_project / GENERATED)
    uninterrupted = pd.read_parquet(reference / GENERATED)
    assert len(uninterrupted) == 90
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    assert sent_by_reference == 30  # 3 tasks per answer: exactly 30 requests for 90


@pytest.mark.slow
def test_a_malformed_seed_file_names_file_line_and_field(
    generate_project: Path, monkeypatch
):
    monkeypatch.setenv("BELLE_TEST_KEY", "test-key")
    seeds = generate_project / "data/01_raw/zh_seed_tasks.json"
    lines = seeds.read_text("utf-8").splitlines()
    broken = json.loads(lines[2])
    broken["instances"] = [{"input": "x"}]  # no output
    lines[2] = json.dumps(broken, ensure_ascii=False)
    seeds.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with FakeOpenAIServer(belle_reply) as server:
        write_loopback_env(generate_project, server.base_url)
        # Kedro wraps the loader's FormatError; its message must reach the user whole.
        expected = f"{seeds}, line 3: field 'instances[0].output' is missing"
        with pytest.raises(DatasetError, match=re.escape(expected)):
            run_generate(generate_project)
        while mlflow.active_run() is not None:  # the failed session's run
            mlflow.end_run()
        assert not server.requests  # failed before any paid call


@pytest.mark.slow
def test_the_spend_limit_stops_cleanly_and_a_larger_one_continues_to_the_same_output(
    generate_project: Path, monkeypatch
):
    monkeypatch.setenv("BELLE_TEST_KEY", "test-key")
    reference = generate_project.parent / "reference"
    with FakeOpenAIServer(belle_reply) as server:
        write_loopback_env(generate_project, server.base_url, max_in_flight=2)
        shutil.copytree(generate_project, reference)
        run_generate(reference)  # no limit
        full = latest_summary(reference)
        sent_by_reference = len(server.requests)

        limit = full["cost_estimate"] / 2
        write_loopback_env(
            generate_project, server.base_url, max_in_flight=2, max_cost_usd=limit
        )
        run_generate(generate_project)  # ends cleanly, short of the target
        stopped = latest_summary(generate_project)
        write_loopback_env(
            generate_project, server.base_url, max_in_flight=2, max_cost_usd=None
        )
        run_generate(generate_project)
        resumed = latest_summary(generate_project)
        sent = [r["client_request_id"] for r in server.requests[sent_by_reference:]]

    assert stopped["stopped_by_budget"] and not stopped["target_reached"]
    assert stopped["requests_not_sent_budget"] > 0
    assert 0 < stopped["cost_estimate"] <= limit
    assert not resumed["stopped_by_budget"] and resumed["target_reached"]
    assert resumed["cost_estimate"] == full["cost_estimate"]
    assert len(sent) == len(set(sent)) == sent_by_reference  # nothing paid twice
    pd.testing.assert_frame_equal(
        pd.read_parquet(generate_project / GENERATED),
        pd.read_parquet(reference / GENERATED),
    )


def _reply_with_a_broken_block(body: dict, endpoint: str) -> Reply:
    reply = belle_reply(body, endpoint)
    return Reply(text=reply.text + "###\n9. 指令: 这一条没有输出。\n")


@pytest.mark.slow
def test_unparsable_blocks_are_counted_in_the_summary_with_examples(
    generate_project: Path, monkeypatch
):
    monkeypatch.setenv("BELLE_TEST_KEY", "test-key")
    with FakeOpenAIServer(_reply_with_a_broken_block) as server:
        write_loopback_env(generate_project, server.base_url)
        run_generate(generate_project)
    summary = latest_summary(generate_project)
    assert summary["instructions_parsed"] == 3 * summary["responses_ok"]
    assert summary["blocks_unparsable"] == summary["responses_ok"]
    assert summary["unparsable_examples"][0] == "9. 指令: 这一条没有输出。"
    assert len(summary["unparsable_examples"]) == min(5, summary["responses_ok"])
