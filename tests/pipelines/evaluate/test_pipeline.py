"""Real Kedro sessions of the evaluate pipeline against a real (temporary) MLflow registry."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.support.models import REGISTERED_MODEL
from tests.support.openai_server import FakeOpenAIServer, Reply, prompt_text
from tests.support.project import open_session

pytestmark = pytest.mark.slow

ANSWER_MARKER = "模型回答："
QUESTIONS_PER_CLASS = 2


def judged_score(question: str, answer: str) -> float | None:
    """The loopback judge's verdict on one answer; None = it replies without a score.

    Keyed on question and answer: a smoke model that gives one answer to everything
    still gets different verdicts, so every variant keeps scored classes.
    """
    first_line = question.strip().split("\n", 1)[0].strip()
    key = f"{first_line}\x1f{answer}".encode()
    digest = int(hashlib.sha256(key).hexdigest(), 16)
    if digest % 5 == 0:
        return None
    return (digest % 11) / 10


def judge_responder(body: dict[str, Any], endpoint: str) -> Reply:
    prompt = prompt_text(body)
    answer = prompt.rsplit(ANSWER_MARKER, 1)[1].strip()
    question = prompt.split("问题：", 1)[1].split("\n", 1)[0].strip()
    score = judged_score(question, answer)
    if score is None:
        return Reply(text="这个回答无法评价。")
    # The same verdict in the forms real judges use; the reader must agree on all.
    forms = [
        f"回答基本切题。\n**得分：{score}**",
        f"得分：{round(score * 10)}分（满分10分）\n理由：大体正确。",
        f"得分: {round(score * 100)}%",
    ]
    return Reply(text=forms[len(answer) % 3])


class RateLimitingJudge:
    """The loopback judge, answering the first sight of every third prompt with a 429.

    The retry (or a later sample of the same prompt) then gets the judge's verdict,
    as a provider's rate limiter would behave.
    """

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.rate_limited = 0

    def __call__(self, body: dict[str, Any], endpoint: str) -> Reply:
        prompt = prompt_text(body)
        first_sight = prompt not in self.seen
        self.seen.add(prompt)
        if (
            first_sight
            and int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 3 == 0
        ):
            self.rate_limited += 1
            return Reply(status=429, headers={"retry-after-ms": "20"})
        return judge_responder(body, endpoint)


def _run(project: Path, runtime_params: dict[str, Any]) -> dict[str, Any]:
    with open_session(project, runtime_params=runtime_params) as session:
        session.run(pipeline_name="evaluate")
        catalog = session.load_context().catalog
        outputs = {
            name: catalog.load(name)
            for name in ("eval_table", "eval_macro", "champion", "eval_report")
        }
        outputs["answers"] = {
            variant: catalog.load(f"{variant}.answers")
            for variant in outputs["eval_macro"]["variant"]
        }
        outputs["scored"] = {
            variant: catalog.load(f"{variant}.scored_answers")
            for variant in outputs["eval_macro"]["variant"]
        }
    return outputs


def _assert_champion_alias_on_best(
    outputs: dict[str, Any], records: dict[str, dict[str, Any]]
) -> None:
    macro = outputs["eval_macro"]
    # the default rule: the smallest variant the best does not significantly beat
    not_worse = macro[macro["macro_behind_best_ci_low"] <= 0]
    best = not_worse.sort_values("train_size").iloc[0]
    champion = outputs["champion"]
    assert champion["variant"] == best["variant"]
    assert champion["rule"] == "smallest_not_worse_than_best"
    alias = MlflowClient().get_model_version_by_alias(REGISTERED_MODEL, "champion")
    assert (
        str(alias.version) == records[best["variant"]]["version"] == champion["version"]
    )
    assert alias.tags["champion_rule"] == "smallest_not_worse_than_best"
    assert outputs["eval_report"].startswith("# Evaluation report\n\n**Verdict:**")


def test_loopback_judge_scores_flow_into_the_table_and_reruns_pay_nothing(
    registered_project: tuple[Path, dict[str, dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project, records = registered_project
    monkeypatch.setenv("JUDGE_API_KEY", "test-judge-key")
    judge = RateLimitingJudge()
    with FakeOpenAIServer(judge) as server:
        params = {
            "evaluate": {
                "questions": {"max_per_class": QUESTIONS_PER_CLASS},
                "judge": {
                    "enabled": True,
                    "samples": 3,
                    "max_in_flight": 4,
                    "backend": {
                        "backend": "openai",
                        "model": "loopback-judge",
                        "openai": {"base_url": server.base_url, "max_retries": 3},
                    },
                },
            }
        }
        outputs = _run(project, params)
        first_run_requests = len(server.requests)
        rerun = _run(project, params)
        rerun_requests = len(server.requests) - first_run_requests

    answers = pd.concat(outputs["answers"].values(), ignore_index=True)
    # every answer judged 3 times, each sample its own request id; every 429 was
    # retried under the same id and nothing else was sent twice
    assert judge.rate_limited > 0
    assert first_run_requests == 3 * len(answers) + judge.rate_limited
    ids = [request["client_request_id"] for request in server.requests]
    assert len(set(ids)) == 3 * len(answers)
    assert {request["model"] for request in server.requests} == {"loopback-judge"}
    assert server.api_keys_seen == {"test-judge-key"}
    # same answers, same judge: the re-run is served from the journals
    assert rerun_requests == 0
    pd.testing.assert_frame_equal(rerun["eval_table"], outputs["eval_table"])

    # the table holds exactly the loopback judge's verdicts, unparsed ones left out
    answers["expected"] = [
        judged_score(question.strip(), answer.strip())
        for question, answer in zip(answers["question"], answers["answer"], strict=True)
    ]
    expected = (
        answers.dropna(subset=["expected"])
        .groupby(["variant", "class"])["expected"]
        .agg(["mean", "count"])
    )
    table = outputs["eval_table"].set_index(["variant", "class"])
    for (variant, cls), row in table.iterrows():
        if (variant, cls) in expected.index:
            assert row["mean"] == pytest.approx(expected.loc[(variant, cls), "mean"])
            assert row["count"] == expected.loc[(variant, cls), "count"]
        else:
            assert row["count"] == 0 and math.isnan(row["mean"])
    assert len(table) == 4 * 11
    scored = pd.concat(outputs["scored"].values(), ignore_index=True)
    unparsed = scored[~scored["judge_parsed"]]
    assert unparsed["score"].isna().all() and unparsed["judge_samples"].eq(3).all()

    assert "LLM judge `loopback-judge`" in outputs["eval_report"]
    assert "## Judge reliability" in outputs["eval_report"]
    assert "no value labelled 得分" in outputs["eval_report"]  # unparsed examples
    _assert_champion_alias_on_best(outputs, records)


def test_offline_default_produces_report_plot_and_champion(
    registered_project: tuple[Path, dict[str, dict[str, Any]]],
) -> None:
    project, records = registered_project
    outputs = _run(
        project, {"evaluate": {"questions": {"max_per_class": QUESTIONS_PER_CLASS}}}
    )

    reporting = project / "data" / "08_reporting"
    for name in (
        "eval_table.csv",
        "eval_macro.csv",
        "scaling_plot.png",
        "scaling_plot.json",
        "class_heatmap.png",
        "class_heatmap.json",
        "eval_report.md",
        "champion.json",
    ):
        versions = list((reporting / name).glob(f"*/{name}"))
        assert len(versions) == 1 and versions[0].stat().st_size > 0, name
    plot = json.loads(
        next((reporting / "scaling_plot.json").glob("*/scaling_plot.json")).read_text()
    )
    assert "overall (macro)" in [trace["name"] for trace in plot["data"]]
    assert (
        next((reporting / "scaling_plot.png").glob("*/scaling_plot.png")).read_bytes()[
            :4
        ]
        == b"\x89PNG"
    )

    report = outputs["eval_report"]
    assert "offline `reference_token_prob`" in report and "judge switched off" in report
    # with the judge off, open-ended classes have no standard answer and so no score
    table = outputs["eval_table"].set_index(["variant", "class"])
    assert table.loc[("small", "generation"), "count"] == 0
    assert table.loc[("small", "math"), "count"] == QUESTIONS_PER_CLASS
    scored = outputs["scored"]["small"]
    assert (
        scored["reference_tokens"].gt(0).any()
        and scored["perplexity"].dropna().gt(1).all()
    )
    _assert_champion_alias_on_best(outputs, records)

    # the report and metrics landed in the kedro run's MLflow run
    client = MlflowClient()
    runs = client.search_runs(
        [experiment.experiment_id for experiment in client.search_experiments()],
        filter_string="metrics.`evaluate.champion.score` > -1",
    )
    assert len(runs) == 1
    parent = runs[0].info.run_id
    artifacts = {item.path for item in client.list_artifacts(parent, "evaluate")}
    assert {
        "evaluate/eval_report.md",
        "evaluate/scaling_plot.png",
        "evaluate/scaling_plot.json",
        "evaluate/class_heatmap.png",
        "evaluate/class_heatmap.json",
    } <= artifacts
    # ... and each variant's answers and metrics in its own child run under it
    children = client.search_runs(
        [runs[0].info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
    )
    by_name = {child.info.run_name: child for child in children}
    assert set(by_name) == set(records)
    small = by_name["small"]
    expected_math = (
        outputs["eval_table"]
        .set_index(["variant", "class"])
        .loc[("small", "math"), "mean"]
    )
    assert small.data.metrics["evaluate.score.math"] == pytest.approx(expected_math)
    child_artifacts = {
        item.path for item in client.list_artifacts(small.info.run_id, "evaluate")
    }
    assert {
        "evaluate/answers.parquet",
        "evaluate/scored_answers.csv",
    } <= child_artifacts
