"""generate with ``llm.api: batch`` in real Kedro sessions against the loopback Batch API."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from belle_kedro.llm.batch import BatchLedger
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
from tests.support.openai_server import FakeOpenAIServer

LEDGER = JOURNAL.with_name("raw_responses.batches.jsonl")


@pytest.mark.slow
def test_a_batch_run_gives_the_records_of_a_chat_run_at_half_the_cost(
    generate_project: Path, monkeypatch
):
    monkeypatch.setenv("BELLE_TEST_KEY", "test-key")
    chat_project = generate_project.parent / "chat"
    with FakeOpenAIServer(belle_reply, polls_per_state=2) as server:
        write_loopback_env(generate_project, server.base_url)
        shutil.copytree(generate_project, chat_project)
        run_generate(chat_project)
        write_loopback_env(generate_project, server.base_url, api="batch")
        run_generate(generate_project)
    pd.testing.assert_frame_equal(
        pd.read_parquet(generate_project / GENERATED),
        pd.read_parquet(chat_project / GENERATED),
    )
    chat, batch = latest_summary(chat_project), latest_summary(generate_project)
    assert batch["api"] == "batch" and batch["usage"] == chat["usage"]
    assert batch["cost_estimate"] == pytest.approx(chat["cost_estimate"] / 2, abs=1e-6)
    assert batch["batch"]["batches_submitted"] == 1  # 4 requests, 4 per file
    assert batch["batch"]["items_answered"] == batch["requests_planned"] == 4
    assert batch["request_ids"] == chat["request_ids"]
    records = ResponseJournal(generate_project / JOURNAL).records()
    assert all(r["batch_id"] and r["api"] == "chat" for r in records)
    inputs = list(BatchLedger(generate_project / LEDGER).inputs_dir.glob("*.jsonl"))
    assert len(inputs) == 1


def _first_try_fails(custom_id: str, attempt: int) -> str | None:
    if attempt > 1:
        return None
    return ("error", "expire", "malformed", None)[int(custom_id.split("-")[2]) % 4]


@pytest.mark.slow
def test_failed_and_expired_items_go_into_a_new_batch_on_the_next_run(
    generate_project: Path, monkeypatch
):
    monkeypatch.setenv("BELLE_TEST_KEY", "test-key")
    reference = generate_project.parent / "reference"
    with FakeOpenAIServer(belle_reply, batch_faults=_first_try_fails) as server:
        write_loopback_env(generate_project, server.base_url, api="batch")
        shutil.copytree(generate_project, reference)
        run_generate(generate_project)
        first = latest_summary(generate_project)
        run_generate(generate_project)
        second = latest_summary(generate_project)
    with FakeOpenAIServer(belle_reply) as clean_server:  # never fails
        write_loopback_env(reference, clean_server.base_url, api="batch")
        run_generate(reference)
    # Run 1: 3 of every 4 first tries fail, so max_requests (10) ends it short; run 2
    # asks for requests 0-3 again and only the failed ones go into a new batch.
    assert (
        first["batch"]["items_failed"] >= 2 and first["batch"]["lines_malformed"] >= 1
    )
    assert not first["target_reached"]
    assert second["target_reached"] and second["responses_failed"] == 0
    resubmitted = {k for k, n in server.batch_submissions.items() if n > 1}
    assert resubmitted and all(_first_try_fails(k, 1) for k in resubmitted)
    pd.testing.assert_frame_equal(
        pd.read_parquet(generate_project / GENERATED),
        pd.read_parquet(reference / GENERATED),
    )


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun_equals_an_uninterrupted_batch_run(
    generate_project: Path, monkeypatch
):
    monkeypatch.setenv("BELLE_TEST_KEY", "test-key")
    reference = generate_project.parent / "reference"
    settings = {"num_instructions_to_generate": 60, "max_requests": 30}
    rng = random.Random(12)
    kills_while_open = 0
    with FakeOpenAIServer(belle_reply, polls_per_state=20) as server:
        write_loopback_env(generate_project, server.base_url, api="batch", **settings)
        shutil.copytree(generate_project, reference)
        run_generate(reference)  # the uninterrupted run
        paid_by_reference = sum(server.batch_paid.values())
        server.batch_paid.clear()
        server.batch_submissions.clear()
        ledger = BatchLedger(generate_project / LEDGER)
        for _ in range(5):
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    KILL_SCRIPT,
                    str(generate_project),
                    LOOPBACK_ENV,
                ],
                cwd=generate_project,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            # Kedro takes seconds to start: the random moment counts from the node's start.
            assert process.stdout is not None
            for line in process.stdout:
                if b"Running node: request_responses" in line:
                    break
            threading.Thread(target=process.stdout.read, daemon=True).start()
            time.sleep(rng.uniform(0.0, 4.0))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
            kills_while_open += bool(ledger.open_batches())
            print(
                "KILL",
                process.returncode,
                len(ledger.open_batches()),
                len(ResponseJournal(generate_project / JOURNAL).done_ids()),
            )
        run_generate(generate_project)  # the last run, left to finish
    assert kills_while_open >= 2, "no kill came while batches were open"
    pd.testing.assert_frame_equal(
        pd.read_parquet(generate_project / GENERATED),
        pd.read_parquet(reference / GENERATED),
    )
    assert len(pd.read_parquet(reference / GENERATED)) == 60
    assert not server.paid_twice()  # no request id answered in two batches
    assert max(server.batch_submissions.values()) == 1  # nor submitted twice
    assert sum(server.batch_paid.values()) == paid_by_reference == 20
