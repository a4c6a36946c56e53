"""A whole ``kedro run --pipeline evaluate`` with the loopback judge whose data folder
fills up while the judge journals its replies.

The project's ``data/`` is a real tmpfs (tests/support/small_disk.py); a hook fills it
just before ``small.judge_answers`` runs, leaving room for the journal's reserve and a
few records. The run must fail naming the journal and the variant's judge, leave the
journal with whole records only and every reply that was paid for (those in flight when
the disk filled, journaled in the reserve's space), and the rerun after space is freed
must give the undisturbed run's table without paying for any reply twice.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from belle_kedro.llm.journal import (
    RESERVE_PER_ANSWER,
    JournalWriteError,
    ResponseJournal,
)
from tests.pipelines.evaluate.test_pipeline import judge_responder
from tests.support.openai_server import FakeOpenAIServer
from tests.support.project import open_session
from tests.support.small_disk import FillBeforeNode, project_data_on_small_disk

IN_FLIGHT = 4
JOURNAL = Path("07_model_output/small/judge_journal.jsonl")


def judge_params(base_url: str) -> dict[str, Any]:
    return {
        "evaluate": {
            "questions": {"max_per_class": 1},
            "judge": {
                "enabled": True,
                "samples": 3,
                "max_in_flight": IN_FLIGHT,
                "backend": {
                    "backend": "openai",
                    "model": "loopback-judge",
                    "openai": {"base_url": base_url, "max_retries": 3},
                },
            },
        }
    }


def eval_table(project: Path, params: dict[str, Any]) -> pd.DataFrame:
    with open_session(project, runtime_params=params) as session:
        session.run(pipeline_name="evaluate")
        return session.load_context().catalog.load("eval_table")


@pytest.mark.slow
def test_a_disk_that_fills_while_judging_loses_no_reply_and_pays_none_twice(
    registered_project: tuple[Path, dict[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    project, _ = registered_project
    monkeypatch.setenv("JUDGE_API_KEY", "test-judge-key")
    reference = project.parent / "reference"
    shutil.copytree(project, reference)
    with FakeOpenAIServer(judge_responder) as server:
        params = judge_params(server.base_url)
        expected = eval_table(reference, params)
        paid_by_reference = Counter(r["client_request_id"] for r in server.requests)
        server.requests.clear()
        with project_data_on_small_disk(project, "64m") as disk:
            journal = disk.folder / JOURNAL
            with open_session(project, runtime_params=params) as session:
                session._hook_manager.register(
                    FillBeforeNode(
                        disk,
                        "small.judge_answers",
                        leave=IN_FLIGHT * RESERVE_PER_ANSWER + 8192,
                    )
                )
                with pytest.raises(JournalWriteError) as raised:
                    session.run(pipeline_name="evaluate")
            while mlflow.active_run() is not None:  # the failed session's run
                mlflow.end_run()
            # The journal's path and the advice; Kedro's log names the node and variant.
            assert str(raised.value).startswith(
                f"[Errno 28] {journal}: disk full (No space left on device); nothing "
                "more was sent, and the "
            )
            assert "in flight when it filled were journaled" in str(raised.value)
            assert "Free space and rerun" in str(raised.value)
            assert "-> [small.judgements] failed with error" in caplog.text
            lines = journal.read_bytes().split(b"\n")
            assert lines[-1] == b""  # ends on a whole record...
            journaled = ResponseJournal(journal).records()
            assert len(journaled) == len(lines) - 1 > 0  # ...and every line is one
            # Every reply paid for is kept (variants judged before ``small`` included),
            # those in flight when the disk filled too, and the run stopped short.
            paid_before = Counter(r["client_request_id"] for r in server.requests)
            kept = {
                record["request_id"]
                for path in journal.parent.parent.glob("*/judge_journal.jsonl")
                for record in ResponseJournal(path).records()
            }
            assert kept == set(paid_before)
            assert len(paid_before) < len(paid_by_reference)
            assert not [name for name in disk.files() if name.endswith(".reserve")]
            disk.free()
            again = eval_table(project, params)
    pd.testing.assert_frame_equal(again, expected)
    paid = Counter(r["client_request_id"] for r in server.requests)
    assert set(paid) == set(paid_by_reference)
    repaid = {key: count for key, count in paid.items() if count > 1}
    assert not repaid
