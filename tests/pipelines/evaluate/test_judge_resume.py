"""SIGKILL in the middle of judging, then a re-run: nothing answered is paid for twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from belle_kedro.datasets.eval_set import load_eval_set
from belle_kedro.datasets.judge_prompts import load_judge_prompts
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.pipelines.evaluate.nodes import judge_answers, select_questions
from tests.support.openai_server import FakeOpenAIServer, Reply, prompt_text
from tests.support.project import REPO_ROOT, declared

N_ANSWERS = 20
SAMPLES = 3
KILL_AFTER_REQUESTS = 15

CHILD = """
import json, sys
import pandas as pd
from belle_kedro.datasets.judge_prompts import load_judge_prompts
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.pipelines.evaluate.nodes import judge_answers
answers_path, journal_path, prompts_path, judge = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
judge_answers(pd.read_parquet(answers_path), load_judge_prompts(prompts_path), ResponseJournal(journal_path), {"api_key": "k"}, judge)
"""


def _score_for(body: dict[str, Any], endpoint: str) -> Reply:
    answer_number = int(prompt_text(body).rsplit("回答编号", 1)[1].strip())
    return Reply(text=f"得分: {answer_number / N_ANSWERS:.2f}")


@pytest.mark.slow
def test_sigkill_mid_judging_then_rerun_sends_no_answered_request_again(
    tmp_path: Path,
) -> None:
    prompts_path = REPO_ROOT / "data" / "01_raw" / "eval_prompt.json"
    questions = select_questions(
        load_eval_set(REPO_ROOT / "data" / "01_raw" / "eval_set.json"),
        declared("evaluate", "questions"),
    ).head(N_ANSWERS)
    answers = questions.assign(
        answer=[f"回答编号 {i}" for i in range(N_ANSWERS)], variant="small"
    )
    answers_path = tmp_path / "answers.parquet"
    answers.to_parquet(answers_path)
    journal_path = tmp_path / "judge_journal.jsonl"

    # Slow enough that the kill lands mid-run: 2 in flight, 60 requests of 50 ms each.
    with FakeOpenAIServer(_score_for, latency_s=0.05) as server:
        judge = declared(
            "evaluate",
            "judge",
            enabled=True,
            samples=SAMPLES,
            max_in_flight=2,
            request_params={"temperature": 0.7, "max_tokens": 32},
            backend={
                "backend": "openai",
                "model": "loopback-judge",
                "base_url": server.base_url,
                "max_retries": 0,
            },
        )
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                str(answers_path),
                str(journal_path),
                str(prompts_path),
                json.dumps(judge),
            ],
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 90
        while (
            len(server.requests) < KILL_AFTER_REQUESTS
            and child.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL

        answered_before = ResponseJournal(journal_path).done_ids()
        sent_before = len(server.requests)
        assert 0 < len(answered_before) < N_ANSWERS * SAMPLES  # killed mid-judging

        judgements = judge_answers(
            answers,
            load_judge_prompts(prompts_path),
            ResponseJournal(journal_path),
            {"api_key": "k"},
            judge,
        )
        resent = [
            request["client_request_id"] for request in server.requests[sent_before:]
        ]
        after_rerun = len(server.requests)
        again = judge_answers(
            answers,
            load_judge_prompts(prompts_path),
            ResponseJournal(journal_path),
            {"api_key": "k"},
            judge,
        )

    assert (
        not set(resent) & answered_before
    )  # nothing answered before the kill is paid again
    assert len(resent) == len(set(resent))
    all_ids = ResponseJournal(journal_path).done_ids()
    assert len(all_ids) == N_ANSWERS * SAMPLES
    assert (
        set(resent) == all_ids - answered_before
    )  # and everything missing was asked for
    assert len(server.requests) == after_rerun  # a third run is served from the journal

    expected = pd.Series(
        [i / N_ANSWERS for i in range(N_ANSWERS)], index=answers["question_id"]
    )
    got = judgements.set_index("question_id")["judge_score"]
    assert got.round(2).to_dict() == expected.round(2).to_dict()
    assert (
        judgements["judge_samples"].eq(SAMPLES).all()
        and judgements["judge_parsed"].all()
    )
    pd.testing.assert_frame_equal(again, judgements)
