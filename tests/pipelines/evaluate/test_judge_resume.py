"""SIGKILL in the middle of judging, then a re-run: nothing answered is paid for twice.

Once through the chat API, once through the Batch API (same scores, at half the price).
"""

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
from belle_kedro.llm.batch import BatchLedger
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.llm.runner import TokenPrices
from belle_kedro.pipelines.evaluate.nodes import judge_answers, select_questions
from tests.support.llm import judge_templates, loopback_judge
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
from tests.support.llm import judge_templates
answers_path, journal_path, prompts_path, judge = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
judge_answers(pd.read_parquet(answers_path), load_judge_prompts(prompts_path), judge_templates(), journal=ResponseJournal(journal_path), credentials={"api_key": "k"}, judge_params=judge)
"""


def _score_for(body: dict[str, Any], endpoint: str) -> Reply:
    answer_number = int(prompt_text(body).rsplit("回答编号", 1)[1].strip())
    return Reply(text=f"得分: {answer_number / N_ANSWERS:.2f}")


PROMPTS_PATH = REPO_ROOT / "data" / "01_raw" / "eval_prompt.json"


def _answers(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    """N_ANSWERS answers numbered in their text (the loopback judge scores the number)."""
    questions = select_questions(
        load_eval_set(REPO_ROOT / "data" / "01_raw" / "eval_set.json"),
        declared("evaluate", "questions"),
    ).head(N_ANSWERS)
    answers = questions.assign(
        answer=[f"回答编号 {i}" for i in range(N_ANSWERS)], variant="small"
    )
    answers_path = tmp_path / "answers.parquet"
    answers.to_parquet(answers_path)
    return answers, answers_path


def _judge(answers: pd.DataFrame, journal_path: Path, judge: dict) -> pd.DataFrame:
    return judge_answers(
        answers,
        load_judge_prompts(PROMPTS_PATH),
        judge_templates(),
        journal=ResponseJournal(journal_path),
        credentials={"api_key": "k"},
        judge_params=judge,
    )


def _start_judging(
    answers_path: Path, journal_path: Path, judge: dict
) -> subprocess.Popen:
    """judge_answers in a fresh process (the tests kill it)."""
    path = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")])
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(answers_path),
            str(journal_path),
            str(PROMPTS_PATH),
            json.dumps(judge),
        ],
        cwd=journal_path.parent,
        env={**os.environ, "PYTHONPATH": path},
    )


def _expected_scores(answers: pd.DataFrame) -> dict:
    scores = [i / N_ANSWERS for i in range(N_ANSWERS)]
    return pd.Series(scores, index=answers["question_id"]).round(2).to_dict()


@pytest.mark.slow
def test_sigkill_mid_judging_then_rerun_sends_no_answered_request_again(
    tmp_path: Path,
) -> None:
    answers, answers_path = _answers(tmp_path)
    journal_path = tmp_path / "judge_journal.jsonl"

    # Slow enough that the kill lands mid-run: 2 in flight, 60 requests of 50 ms each.
    with FakeOpenAIServer(_score_for, latency_s=0.05) as server:
        judge = loopback_judge(
            server.base_url,
            samples=SAMPLES,
            max_in_flight=2,
            request_params={"temperature": 0.7, "max_tokens": 32},
        )
        child = _start_judging(answers_path, journal_path, judge)
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

        judgements = _judge(answers, journal_path, judge)
        resent = [
            request["client_request_id"] for request in server.requests[sent_before:]
        ]
        after_rerun = len(server.requests)
        again = _judge(answers, journal_path, judge)

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

    got = judgements.set_index("question_id")["judge_score"]
    assert got.round(2).to_dict() == _expected_scores(answers)
    assert (
        judgements["judge_samples"].eq(SAMPLES).all()
        and judgements["judge_parsed"].all()
    )
    pd.testing.assert_frame_equal(again, judgements)


@pytest.mark.slow
def test_the_judge_through_the_batch_api_survives_a_sigkill_at_half_the_price(
    tmp_path: Path,
) -> None:
    answers, answers_path = _answers(tmp_path)
    chat_journal = tmp_path / "chat" / "judge_journal.jsonl"
    batch_journal = tmp_path / "batch" / "judge_journal.jsonl"
    chat_journal.parent.mkdir()
    batch_journal.parent.mkdir()
    ledger = BatchLedger.beside(ResponseJournal(batch_journal))
    prices = {"prompt": 1.0, "completion": 1.0}
    # Every batch passes 4 states x 10 polls: the kill lands while batches are open.
    with FakeOpenAIServer(_score_for, polls_per_state=10) as server:
        chat = _judge(
            answers,
            chat_journal,
            loopback_judge(
                server.base_url, samples=SAMPLES, price_per_1k_tokens=prices
            ),
        )
        judge = loopback_judge(
            server.base_url,
            "batch",
            samples=SAMPLES,
            price_per_1k_tokens=prices,
            max_cost_usd=1000.0,
            backend={"openai": {"batch": {"max_requests_per_file": 16}}},
        )
        child = _start_judging(answers_path, batch_journal, judge)
        deadline = time.monotonic() + 90
        while not ledger.open_batches() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL
        assert ledger.open_batches(), "the kill came after every batch was collected"
        batched = _judge(answers, batch_journal, judge)
        assert not server.paid_twice()  # no request answered in two batches
        assert max(server.batch_submissions.values()) == 1  # nor submitted twice
        assert sum(server.batch_paid.values()) == N_ANSWERS * SAMPLES
        requests_before = len(server.requests)
        again = _judge(answers, batch_journal, judge)  # all from the journal
        assert len(server.requests) == requests_before

    columns = ["question_id", "judge_score", "judge_samples", "judge_sample_scores"]
    pd.testing.assert_frame_equal(batched[columns], chat[columns])
    pd.testing.assert_frame_equal(again, batched)
    got = batched.set_index("question_id")["judge_score"]
    assert got.round(2).to_dict() == _expected_scores(answers)
    records = ResponseJournal(batch_journal).records()
    assert len(records) == N_ANSWERS * SAMPLES and all(r["batch_id"] for r in records)


def test_the_batch_judge_spends_at_the_batch_price_within_max_cost_usd(
    tmp_path: Path,
) -> None:
    answers, _ = _answers(tmp_path)
    prices = {"prompt": 1.0, "completion": 1.0}
    with FakeOpenAIServer(_score_for) as server:
        chat = loopback_judge(server.base_url, samples=1, price_per_1k_tokens=prices)
        _judge(answers, tmp_path / "chat.jsonl", chat)
        list_cost = sum(
            TokenPrices(1.0, 1.0).cost(r["usage"])
            for r in ResponseJournal(tmp_path / "chat.jsonl").records()
        )
        # The list-price cost of the whole run buys all of it at the batch price
        # (half), and a quarter of it buys about half the answers, never more.
        for limit, expect_all in ((list_cost * 1.01, True), (list_cost / 4, False)):
            journal = tmp_path / f"batch-{limit}.jsonl"
            judge = loopback_judge(
                server.base_url,
                "batch",
                samples=1,
                price_per_1k_tokens=prices,
                max_cost_usd=limit,
            )
            judged = _judge(answers, journal, judge)
            answered = ResponseJournal(journal).records()
            spent = sum(TokenPrices(0.5, 0.5).cost(r["usage"]) for r in answered)
            assert spent <= limit
            assert judged["judge_parsed"].all() == expect_all
            assert 0 < len(answered) <= N_ANSWERS
