"""The markdown report: what it states, and digits that tell variants apart."""

from __future__ import annotations

import math

import pandas as pd

from belle_kedro.pipelines.evaluate.champion import choose_champion
from belle_kedro.pipelines.evaluate.markdown import markdown_report
from belle_kedro.pipelines.evaluate.published import PublishedScores
from belle_kedro.pipelines.evaluate.statistics import score_tables
from belle_kedro.pipelines.evaluate.summaries import judge_reliability, offline_summary
from tests.pipelines.evaluate.rows import (
    MODEL,
    champion_settings,
    report_settings,
    two_variants,
)

SETTINGS = report_settings(bootstrap_resamples=50, macro_exclusions=["math", "code"])


def _report(scores: pd.DataFrame, published: PublishedScores) -> str:
    scored = scores.assign(
        rouge_l=0.5, char_f1=0.5, number_match=math.nan, answer_chars=10.0,
        reference_nll=2.0, reference_tokens=1, judge_parsed=False, judge_samples=0,
        score_source="offline `rouge_l`",
    )  # fmt: skip
    table, macro = score_tables(scored, SETTINGS)
    macro["score_source"] = "offline `rouge_l`"
    champion = {
        **choose_champion(macro, champion_settings(rule="best_point_estimate")),
        "alias": "champion",
    }
    return markdown_report(
        table,
        macro,
        offline_summary(scored),
        judge_reliability(scored),
        champion,
        settings=SETTINGS,
        published=published,
    )


def test_the_report_states_the_score_and_shows_published_figures(
    scores: pd.DataFrame,
) -> None:
    report = _report(
        scores, PublishedScores("BELLE published", {200: 0.676, 2000: 0.737})
    )
    assert report.startswith("# Evaluation report\n\n**Verdict:** `large`")
    assert "**Score used in every table:** offline `rouge_l`" in report
    assert "| BELLE published |" in report and "200: 0.676, 2K: 0.737" in report
    assert "| open qa |" in report and "macro w/o math, code" in report
    assert "The judge did not run" in report
    assert f"models:/{MODEL}@champion" in report
    # the per-class cell: mean [CI] (n), three decimals when they suffice
    assert "| rewrite | 0.900 [0.900, 0.900] (1) |" in report


def test_published_scores_not_shown_say_why(scores: pd.DataFrame) -> None:
    report = _report(scores, PublishedScores("not shown: another eval set"))
    assert "BELLE's published scores: not shown: another eval set." in report
    assert "| BELLE published |" not in report


def test_close_variants_get_the_digits_that_tell_them_apart() -> None:
    # class means 0.0101 and 0.0104: three decimals would print 0.010 twice
    small = [0.0101] * 4
    large = [0.0104] * 4
    report = _report(
        two_variants({"open qa": small}, {"open qa": large}), PublishedScores("none")
    )
    assert (
        "| open qa | 0.0101 [0.0101, 0.0101] (4) | 0.0104 [0.0104, 0.0104] (4) |"
        in report
    )
    assert "0.0104 [0.0104, 0.0104]" in report.split("## Overall")[1].split("##")[0]
    assert "(macro = 0.0104)" in report
