"""Evaluate settings: every env's block builds, a mis-set key is named, published scores."""

from __future__ import annotations

from typing import Any, get_args

import pandas as pd
import pytest
import yaml

from belle_kedro.common.config import ParameterError, build
from belle_kedro.datasets.eval_set import eval_set_digest
from belle_kedro.pipelines.evaluate.published import published_scores
from belle_kedro.pipelines.evaluate.scores import OFFLINE_SCORES
from belle_kedro.pipelines.evaluate.settings import (
    ChampionSettings,
    EvaluateSettings,
    GenerationSettings,
    OfflineScore,
    PublishedSettings,
    QuestionsSettings,
    ReportSettings,
    ScoringSettings,
)
from tests.support.project import REPO_ROOT, base_parameters, declared, merged

ENVS = ("base", "openai", "belle", "zh_instructions")


def _evaluate_block(env: str) -> dict[str, Any]:
    """``evaluate:`` as a session in ``env`` sees it: base, then the env's changes."""
    block = base_parameters("evaluate")
    path = REPO_ROOT / "conf" / env / "parameters_evaluate.yml"
    if env != "base" and path.exists():
        block = merged(block, yaml.safe_load(path.read_text("utf-8"))["evaluate"])
    return block


@pytest.mark.parametrize("env", ENVS)
def test_every_env_s_evaluate_block_builds(env: str) -> None:
    settings = build(EvaluateSettings, _evaluate_block(env), "evaluate")
    assert settings.report.confidence == 0.95
    if env == "belle":
        assert settings.generation.max_new_tokens == 512
        assert settings.report.published is not None
        assert settings.report.published.by_size[200000] == 0.676


def test_every_offline_score_the_settings_accept_is_described() -> None:
    assert set(OFFLINE_SCORES) == set(get_args(OfflineScore))


@pytest.mark.parametrize(
    ("cls", "block", "change", "message"),
    [
        (QuestionsSettings, "questions", {"max_per_class": 0},
         "evaluate.questions.max_per_class must be ≥ 1"),
        (GenerationSettings, "generation", {"batch_size": "8"},
         "evaluate.generation.batch_size must be an integer"),
        (ScoringSettings, "scoring", {"offline_score": "bleu"},
         "evaluate.scoring.offline_score must be one of"),
        (ReportSettings, "report", {"confidence": 95},
         "evaluate.report.confidence must lie strictly between 0 and 1"),
        (ChampionSettings, "champion", {"rule": "argmax"},
         "evaluate.champion.rule must be one of"),
    ],
)  # fmt: skip
def test_a_mis_set_key_is_named(
    cls: type, block: str, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        build(cls, declared("evaluate", block, **change), f"evaluate.{block}")


def test_an_unknown_or_missing_key_is_named() -> None:
    with pytest.raises(ParameterError, match="unknown parameter.*evaluate.report.sed"):
        build(ReportSettings, declared("evaluate", "report", sed=1), "evaluate.report")
    published = {"label": "BELLE", "eval_set_digest": "x", "overall": {"2M": 0.7}}
    with pytest.raises(ParameterError, match="evaluate.report.published.overall.2M"):
        build(PublishedSettings, published, "evaluate.report.published")


def test_published_scores_are_shown_only_on_their_eval_set() -> None:
    eval_set = pd.DataFrame(
        {"question": ["1+1=?"], "std_answer": ["2"], "class": ["math"]}
    )
    settings = build(
        PublishedSettings,
        {"label": "BELLE published", "eval_set_digest": "0" * 64,
         "overall": {200000: 0.676, 2000000: 0.737}},
        "evaluate.report.published",
    )  # fmt: skip
    other = published_scores(settings, eval_set)
    assert other.by_size == {} and "not shown" in other.label
    assert eval_set_digest(eval_set)[:12] in other.label
    same = published_scores(
        build(
            PublishedSettings,
            {**settings.__dict__, "eval_set_digest": eval_set_digest(eval_set)},
            "evaluate.report.published",
        ),
        eval_set,
    )
    assert same.by_size == {200000: 0.676, 2000000: 0.737}
    assert same.label == "BELLE published"
    assert "evaluate.report.published" in published_scores(None, eval_set).label
