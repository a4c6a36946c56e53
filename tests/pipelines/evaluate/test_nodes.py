"""Evaluate nodes on their own: question selection, scoring, the champion alias."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from belle_kedro.common.errors import FormatError
from belle_kedro.llm.journal import ResponseJournal
from belle_kedro.pipelines.evaluate.nodes import (
    assign_champion_alias,
    choose_champion,
    judge_answers,
    score_answers,
    select_questions,
    variant_metrics,
)
from tests.support.project import declared

JUDGE = declared(
    "evaluate",
    "judge",
    enabled=True,
    backend={
        "backend": "openai",
        "model": "m",
        "openai": {"base_url": "http://127.0.0.1:9/v1"},
    },
)
SCORING = declared("evaluate", "scoring", offline_score="rouge_l")


def _answers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "question_id": ["a", "b", "c"],
            "class": ["math", "open qa", "generation"],
            "question": ["1+1=?", "首都？", "写诗"],
            "std_answer": ["答案：2", "北京", ""],
            "answer": ["等于2", "北京", "春天"],
            "reference_nll": [1.0, 2.0, math.nan],
            "reference_tokens": [1, 2, 0],
            "variant": "small",
            "train_size": 24,
        }
    )


def test_select_questions_is_seeded_and_capped_per_class() -> None:
    eval_set = pd.DataFrame(
        {
            "question": [f"q{i}" for i in range(12)],
            "std_answer": "",
            "class": ["a"] * 8 + ["b"] * 4,
        }
    )
    first = select_questions(
        eval_set, declared("evaluate", "questions", max_per_class=3, seed=1)
    )
    assert first["class"].value_counts().to_dict() == {"a": 3, "b": 3}
    pd.testing.assert_frame_equal(
        first,
        select_questions(
            eval_set, declared("evaluate", "questions", max_per_class=3, seed=1)
        ),
    )
    assert len(select_questions(eval_set, declared("evaluate", "questions"))) == 12
    assert select_questions(eval_set, declared("evaluate", "questions"))[
        "question_id"
    ].is_unique


def test_offline_score_when_the_judge_is_off(tmp_path: Path) -> None:
    scored = score_answers(
        _answers(),
        judge_answers(
            _answers(),
            {},
            {},
            journal=ResponseJournal(tmp_path / "judge.jsonl"),
            credentials={},
            judge_params={**JUDGE, "enabled": False},
        ),
        SCORING,
    )
    assert scored["score"].tolist()[:2] == pytest.approx([2 * 1 / (3 + 4), 1.0])
    assert math.isnan(scored["score"].iloc[2])  # no standard answer, no offline score
    assert scored.loc[0, "number_match"] == 1.0
    assert math.isnan(float(scored["number_match"].loc[1]))
    assert scored.loc[1, "perplexity"] == pytest.approx(math.exp(1.0))
    assert "offline `rouge_l`" in scored["score_source"].iloc[0]
    metrics = variant_metrics(scored)
    assert metrics["score.open_qa"] == {"value": 1.0, "step": 0}
    assert "score.generation" not in metrics  # NaN is not logged


def test_judged_score_replaces_the_offline_one_and_unparsed_stays_nan() -> None:
    judgements = pd.DataFrame(
        {
            "question_id": ["a", "b"],
            "judge_model": "m",
            "judge_samples": [3, 3],
            "judge_parsed_samples": [2, 0],
            "judge_score": [0.5, math.nan],
            "judge_parsed": [True, False],
            "judge_replies": ["[]", "[]"],
        }
    )
    scored = score_answers(_answers(), judgements, SCORING)
    assert scored.loc[0, "score"] == 0.5
    assert math.isnan(float(scored["score"].loc[1]))
    assert not scored.loc[1, "judge_parsed"]
    assert math.isnan(float(scored["score"].loc[2]))
    assert scored.loc[2, "judge_samples"] == 0
    assert "LLM judge `m`" in scored["score_source"].iloc[0]


def test_a_class_without_a_judge_prompt_fails_before_any_request(
    tmp_path: Path,
) -> None:
    with pytest.raises(FormatError, match="no judge prompt for class 'generation'"):
        judge_answers(
            _answers(),
            {"math": "得分", "open qa": "得分"},
            {},
            journal=ResponseJournal(tmp_path / "judge.jsonl"),
            credentials={"api_key": "k"},
            judge_params=JUDGE,
        )


@pytest.mark.slow
def test_champion_alias_lands_on_the_best_version_and_moves_with_it(
    mlflow_store: str, tmp_path: Path
) -> None:
    mlflow.set_tracking_uri(mlflow_store)
    client = MlflowClient()
    client.create_registered_model("belle-alias-test")
    versions = [
        client.create_model_version(
            "belle-alias-test", source=str(tmp_path / f"model{i}")
        ).version
        for i in range(3)
    ]
    macro = pd.DataFrame(
        {
            "variant": ["small", "medium", "large"],
            "train_size": [1, 2, 3],
            "registered_model_name": "belle-alias-test",
            "model_version": [str(v) for v in versions],
            "model_uri": [f"models:/belle-alias-test/{v}" for v in versions],
            "macro": [0.41, 0.62, 0.55],
            "macro_excl": [0.7, 0.5, 0.6],
        }
    )
    settings = {"alias": "champion", "metric": "macro", "rule": "best_point_estimate"}
    champion = assign_champion_alias(choose_champion(macro, settings), settings)
    assert champion["variant"] == "medium"
    tagged = client.get_model_version("belle-alias-test", versions[1])
    assert tagged.tags["champion_rule"] == "best_point_estimate"
    assert str(
        client.get_model_version_by_alias("belle-alias-test", "champion").version
    ) == str(versions[1])
    assert champion["model_uri_alias"] == "models:/belle-alias-test@champion"

    other = {
        "alias": "best-excl",
        "metric": "macro_excl",
        "rule": "best_point_estimate",
    }
    assign_champion_alias(choose_champion(macro, other), other)
    assert str(
        client.get_model_version_by_alias("belle-alias-test", "best-excl").version
    ) == str(versions[0])

    # a later evaluation where large wins moves the alias
    assign_champion_alias(
        choose_champion(macro.assign(macro=[0.1, 0.2, 0.9]), settings), settings
    )
    assert str(
        client.get_model_version_by_alias("belle-alias-test", "champion").version
    ) == str(versions[2])
