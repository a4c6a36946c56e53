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
from collections import Counter
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from belle_kedro.llm.batch import BatchLedger
from belle_kedro.llm.journal import ResponseJournal
from tests.support.disk_full import FillingDisk
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
def test_failed_and_expired_items_are_answered_within_one_run_and_paid_once(
    generate_project: Path, monkeypatch
):
    monkeypatch.setenv("BELLE_TEST_KEY", "test-key")
    reference = generate_project.parent / "reference"
    with FakeOpenAIServer(belle_reply, batch_faults=_first_try_fails) as server:
        write_loopback_env(generate_project, server.base_url, api="batch")
        shutil.copytree(generate_project, reference)
        run_generate(generate_project)
        summary = latest_summary(generate_project)
    with FakeOpenAIServer(belle_reply) as clean_server:  # never fails
        write_loopback_env(reference, clean_server.base_url, api="batch")
        run_generate(reference)
    # 3 of every 4 first tries fail; their follow-up batches answer them in this run.
    assert summary["target_reached"] and summary["shortfall"] == []
    assert summary["requests_planned"] == 4 and summary["responses_failed"] == 0
    assert summary["batch"]["follow_up_batches"] >= 1
    assert summary["batch"]["items_resubmitted"] == 3
    resubmitted = {k for k, n in server.batch_submissions.items() if n > 1}
    assert resubmitted == {
        k for k in server.batch_submissions if _first_try_fails(k, 1)
    }
    # Paid once, but for the malformed line: the server answered it, we could not read it.
    assert server.paid_twice() == sorted(
        k for k in resubmitted if _first_try_fails(k, 1) == "malformed"
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(generate_project / GENERATED),
        pd.read_parquet(reference / GENERATED),
    )


@pytest.mark.slow
def test_items_failing_every_try_end_the_run_non_zero_with_the_true_reason(
    generate_project: Path, monkeypatch
):
    monkeypatch.setenv("BELLE_TEST_KEY", "test-key")
    reference = generate_project.parent / "reference"
    outage = {1: "expire", 3: "error"}

    def faults(custom_id: str, attempt: int) -> str | None:
        return outage.get(int(custom_id.split("-")[2]) % 4)

    with FakeOpenAIServer(belle_reply, batch_faults=faults) as server:
        write_loopback_env(
            generate_project, server.base_url, api="batch", max_requests=5
        )
        shutil.copytree(generate_project, reference)
        with pytest.raises(Exception, match="rerun resumes") as raised:
            run_generate(generate_project)
        while mlflow.active_run() is not None:  # the failed session's run
            mlflow.end_run()
        first = latest_summary(generate_project)
        tries = dict(server.batch_submissions)
        outage.clear()
        paid = Counter(server.batch_paid)
        run_generate(generate_project)  # after the outage: resumes
        second = latest_summary(generate_project)
        paid_again = server.batch_paid - paid
    with FakeOpenAIServer(belle_reply) as clean_server:
        write_loopback_env(
            reference, clean_server.base_url, api="batch", max_requests=5
        )
        run_generate(reference)
    assert type(raised.value).__name__ == "IncompleteRun"
    assert not first["target_reached"] and not first["shortfall_chosen"]
    # requests 1 and 3 failed on all 1 + max_retries (3) tries; 0, 2 and 4 answered.
    assert first["shortfall"][0].startswith(
        "2 request(s) failed after 4 tries (batch_expired x"
    )
    assert "error" in first["shortfall"][0]
    assert first["shortfall"][1].endswith("batch(es) expired")
    assert first["shortfall"][2] == "max_requests (5) reached"
    assert sorted(tries.values()) == [1, 1, 1, 4, 4]
    assert second["target_reached"] and second["shortfall"] == []
    # The rerun paid only for the two that never got an answer.
    assert sorted(paid_again) == sorted(k for k in tries if tries[k] == 4)
    assert not set(paid_again) & set(paid)
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
                # Counted only when the kill landed, mid-run, with batches open.
                assert process.returncode == -signal.SIGKILL
                kills_while_open += bool(ledger.open_batches())
            else:  # the run finished before the kill: it must have succeeded
                assert process.returncode == 0
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


@pytest.mark.slow
@pytest.mark.parametrize("api", ["chat", "batch"])
def test_a_full_disk_stops_generate_clearly_and_the_rerun_pays_nothing_twice(
    generate_project: Path, monkeypatch, api
):
    monkeypatch.setenv("BELLE_TEST_KEY", "test-key")
    reference = generate_project.parent / "reference"
    journal = generate_project / JOURNAL
    with FakeOpenAIServer(belle_reply) as server:
        write_loopback_env(generate_project, server.base_url, api=api)
        shutil.copytree(generate_project, reference)
        run_generate(reference)
        paid_by_reference = paid(server, api)
        server.requests.clear()
        server.batch_paid.clear()
        disk = FillingDisk(monkeypatch, journal.parent, fail_at=3)
        with pytest.raises(Exception, match=f"{journal}: could not append") as raised:
            run_generate(generate_project)
        while mlflow.active_run() is not None:  # the failed session's run
            mlflow.end_run()
        assert "No space left on device" in str(raised.value)
        # Every line of the journal is a whole record (none torn by the full disk).
        lines = journal.read_bytes().split(b"\n")
        assert (
            lines[-1] == b""
            and len(ResponseJournal(journal).records()) == len(lines) - 1
        )
        disk.free()
        run_generate(generate_project)
        paid_in_all = paid(server, api)
    pd.testing.assert_frame_equal(
        pd.read_parquet(generate_project / GENERATED),
        pd.read_parquet(reference / GENERATED),
    )
    # Paid again: at most the answers in flight when the disk filled (4 at once).
    again = {k: n for k, n in paid_in_all.items() if n > 1}
    assert len(again) <= 4, again
    assert set(paid_in_all) == set(paid_by_reference)


def paid(server: FakeOpenAIServer, api: str) -> Counter[str]:
    """Request ids the server answered (so billed), each with how many times."""
    if api == "batch":
        return Counter(server.batch_paid)
    return Counter(r["client_request_id"] for r in server.requests)
