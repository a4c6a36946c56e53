"""apply_review on a Label Studio export, and its errors on bad annotations."""

from __future__ import annotations

import copy
import json

import pytest

from belle_kedro.pipelines.review.annotations import ExportError
from belle_kedro.pipelines.review.nodes import apply_review, pull_annotations
from belle_kedro.pipelines.review.server import ReviewServerError
from tests.support.project import base_parameters, merged
from tests.support.review import EXPORT_FIXTURE, clean_fixture_run, sample_row


@pytest.fixture(scope="module")
def fixture_run():
    return clean_fixture_run()


@pytest.fixture(scope="module")
def export():
    """Captured from the REAL Label Studio 1.23.2 server by test_label_studio.py (two
    reviewers' annotations through its API), with BELLE_CAPTURE_REVIEW_EXPORT."""
    return json.loads(EXPORT_FIXTURE.read_text(encoding="utf-8"))


def _apply(fixture_run, export, **changes):
    params = merged(base_parameters("review"), changes)
    return apply_review(
        fixture_run["clean"],
        fixture_run["sample"],
        export,
        fixture_run["selection"],
        params,
    )


def test_sample_is_reproducible_from_the_seed(fixture_run):
    again = clean_fixture_run()["sample"]
    assert again["record_id"].tolist() == fixture_run["sample"]["record_id"].tolist()
    strata = fixture_run["sample"]["stratum"].value_counts().to_dict()
    assert strata == {"dropped": 9, "kept": 7}
    dropped = fixture_run["sample"].query("stratum == 'dropped'")
    assert sorted(set(dropped["rule"])) == [
        "blacklist", "decontamination", "exact_duplicates", "language", "length",
        "missing_input", "model_address", "near_duplicates",
    ]  # fmt: skip
    seed_repeat = sample_row(
        fixture_run["sample"], "dropped", "请给出三条保持健康作息的小建议"
    )
    assert seed_repeat["partner"] == "给出三条保持健康作息的建议"
    assert seed_repeat["score"] == pytest.approx(0.9286)


def test_stored_real_export_applies_record_by_record(fixture_run, export):
    reviewed, report, metrics = _apply(fixture_run, export, restore_false_drops=True)
    decisions = dict(
        zip(reviewed["instruction"], reviewed["review_decision"], strict=True)
    )
    assert decisions == {
        "给出三条保持健康作息的建议": "accept",
        "写一首关于秋天的五言绝句": "accept",  # rejected first, edited to accept later
        "计算 12 乘以 15 等于多少": "edit",
        "把下面的句子改写得更礼貌": "accept",
        "把这句话翻译成英文": "unreviewed",
        "介绍一下长江的地理概况": "accept",  # restored false drops
        "比较GPT和BERT在结构上的不同": "accept",
        "请给出三条保持健康作息的小建议": "accept",
    }
    edited = reviewed.set_index("instruction").loc["计算 12 乘以 15 等于多少"]
    assert edited["output"] == "12 乘以 15 等于 180。"
    assert report["quality"]["keep_precision"]["all"]["share"] == 0.6667
    assert report["quality"]["false_drops"]["all"]["share"] == 0.375
    assert report["quality"]["false_drops"]["by_rule"]["blacklist"]["share"] == 0.0
    assert len(report["conflicts"]) == 1
    assert metrics["keep_precision.all.low"]["value"] == pytest.approx(0.3)


def test_unreviewed_drop_and_no_restore(fixture_run, export):
    reviewed, report, _ = _apply(fixture_run, export, unreviewed="drop")
    assert "把这句话翻译成英文" not in set(reviewed["instruction"])
    assert "介绍一下长江的地理概况" not in set(reviewed["instruction"])
    assert len(reviewed) == 4
    # Applying again from the same inputs gives the same records.
    again, _, _ = _apply(fixture_run, export, unreviewed="drop")
    assert again.equals(reviewed)


def test_annotation_for_a_task_not_in_the_sample_is_refused(fixture_run, export):
    foreign = copy.deepcopy(export)
    foreign[0]["data"]["record_id"] = "0000000000000000"
    with pytest.raises(ExportError, match="not in the review sample"):
        _apply(fixture_run, foreign)


def test_edit_emptying_a_required_field_is_refused(fixture_run, export):
    emptied = copy.deepcopy(export)
    for task in emptied:
        for annotation in task["annotations"]:
            for item in annotation["result"]:
                if item["from_name"] == "edit_output":
                    item["value"]["text"] = [""]
    with pytest.raises(ExportError, match="empties the required field 'output'"):
        _apply(fixture_run, emptied)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"tasks": []}, "is a list of tasks, got dict"),
        ([{"annotations": []}], r"task \[0\] has no 'data' mapping"),
        ([{"data": {"record_id": "x"}, "annotations": [{"result": "accept"}]}],
         "result must be a list"),
    ],
)  # fmt: skip
def test_export_in_an_unexpected_shape_is_refused(fixture_run, broken, message):
    with pytest.raises(ExportError, match=message):
        _apply(fixture_run, broken)


def test_unreachable_server_names_the_url(monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "token")
    params = merged(
        base_parameters("review"), {"label_studio": {"url": "http://127.0.0.1:9"}}
    )
    with pytest.raises(
        ReviewServerError, match=r"http://127\.0\.0\.1:9 is unreachable"
    ):
        pull_annotations(None, params)


def test_no_export_and_no_server_says_what_to_do():
    with pytest.raises(ExportError, match="no annotations"):
        pull_annotations(None, base_parameters("review"))
