"""The dataset folder as its consumers read it: datasets.load_dataset, the exports, the card."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kedro.io import DatasetError

from belle_kedro.common.config import build
from belle_kedro.common.template import build_prompt
from belle_kedro.datasets.folder import FolderDataset
from belle_kedro.pipelines.release.dataset_folder import dataset_folder, size_category
from belle_kedro.pipelines.release.settings import DatasetReleaseSettings
from belle_kedro.pipelines.review.quality import filter_quality
from tests.pipelines.release.records import instruction_frame, run_records
from tests.support.project import declared


def _settings(**changes: object) -> DatasetReleaseSettings:
    return build(
        DatasetReleaseSettings,
        declared("release", "dataset", **changes),
        "release.dataset",
    )


@pytest.fixture
def variants() -> dict[str, pd.DataFrame]:
    pool = instruction_frame(12, "训练")
    return {"small": pool.iloc[:5], "large": pool.iloc[:12]}


@pytest.fixture
def holdout() -> pd.DataFrame:
    return instruction_frame(4, "留出")


def _write(tmp_path: Path, files: dict) -> Path:
    FolderDataset(filepath=str(tmp_path / "dataset")).save(files)
    return tmp_path / "dataset"


def test_load_dataset_reads_every_config_with_its_rows_and_features(
    tmp_path: Path, variants: dict[str, pd.DataFrame], holdout: pd.DataFrame
) -> None:
    datasets = pytest.importorskip("datasets")
    files = dataset_folder(
        holdout,
        variants,
        run_records(variants, holdout),
        _settings(max_records_per_shard=4),
    )
    folder = _write(tmp_path, files)
    assert len(list((folder / "data" / "large").glob("train-*.parquet"))) == 3
    for name, frame in variants.items():
        loaded = datasets.load_dataset(
            str(folder), name=name, cache_dir=str(tmp_path / "c")
        )
        assert loaded["train"].num_rows == len(frame)
        assert loaded["test"].num_rows == len(holdout)
        assert list(loaded["train"].features) == [
            "instruction",
            "input",
            "output",
            "category",
            "source",
        ]
        assert loaded["train"]["instruction"] == frame["instruction"].tolist()
        assert loaded["train"]["category"] == [
            None if pd.isna(value) else value for value in frame["category"]
        ]
    only_holdout = datasets.load_dataset(
        str(folder), name="holdout", cache_dir=str(tmp_path / "c")
    )
    assert only_holdout["test"]["output"] == holdout["output"].tolist()


def test_card_header_declares_the_hub_metadata(
    variants: dict[str, pd.DataFrame], holdout: pd.DataFrame
) -> None:
    card = dataset_folder(
        holdout, variants, run_records(variants, holdout), _settings()
    )["README.md"]
    assert isinstance(card, str)
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["license"] == "apache-2.0"
    assert header["language"] == ["zh"]
    assert header["task_categories"] == ["text-generation"]
    assert header["size_categories"] == ["n<1K"]
    names = [config["config_name"] for config in header["configs"]]
    assert names == ["small", "large", "holdout"]
    assert [c.get("default", False) for c in header["configs"]] == [False, True, False]


def test_every_figure_in_the_card_comes_from_the_records(
    variants: dict[str, pd.DataFrame], holdout: pd.DataFrame
) -> None:
    records = run_records(variants, holdout)
    card = str(dataset_folder(holdout, variants, records, _settings())["README.md"])
    for entry in records.split_report["variants"].values():
        assert entry["digest"] in card
    assert records.clean_report["eval_set_digest"] in card
    assert "| length | 10 | 2 |" in card
    assert "ROUGE-L ≥ 0.7" in card and "264 questions" in card
    assert "SmolLM2-135M-Instruct" in card and records.prompt_digest in card
    assert "`run1`" in card and "parent0" in card
    assert "## Limitations" in card and "Wrong facts" in card
    assert "zh_seed_tasks 5" in card
    # Kept per class, and dropped per class summed over the rules.
    assert "| code | 0 | 1 |\n| math | 4 | 2 |\n| rewrite | 3 | 0 |" in card
    assert "held-out accuracy 0.8818" in card
    assert "Review by people" not in card  # the review did not run


def test_the_card_states_the_reviews_figures_when_it_ran(
    variants: dict[str, pd.DataFrame], holdout: pd.DataFrame
) -> None:
    """Figures as filter_quality computes them from reviewed rows, never typed."""
    decided = pd.DataFrame(
        {
            "stratum": ["kept", "kept", "kept", "borderline", "dropped", "dropped"],
            "rule": ["", "", "", "near_duplicates", "length", "length"],
            "task_class": ["math", "math", "rewrite", "rewrite", "math", "rewrite"],
            "review_decision": [
                "accept",
                "reject",
                "edit",
                "accept",
                "accept",
                "reject",
            ],
        }
    )
    review_report = {
        "input_records": 7,
        "output_records": 6,
        "reviewed_records": 6,
        "quality": filter_quality(decided),
    }
    records = dataclasses.replace(
        run_records(variants, holdout), review_report=review_report
    )
    card = str(dataset_folder(holdout, variants, records, _settings())["README.md"])
    assert "### Review by people" in card
    # Kept: 3 of 4 accepted; dropped: 1 of 2 would have been kept (Wilson by hand).
    assert "| all | 0.75 [0.3006, 0.9544] (3/4) | 0.5 [0.0945, 0.9055] (1/2) |" in card
    assert (
        "| class math | 0.5 [0.0945, 0.9055] (1/2) | 1.0 [0.2065, 1.0] (1/1) |" in card
    )
    assert "| rule length | – | 0.5 [0.0945, 0.9055] (1/2) |" in card
    assert "| rule none | 0.6667 [0.2077, 0.9385] (2/3) | – |" in card


def test_a_changed_upstream_record_changes_the_card(
    variants: dict[str, pd.DataFrame], holdout: pd.DataFrame
) -> None:
    before = dataset_folder(
        holdout, variants, run_records(variants, holdout), _settings()
    )
    after = dataset_folder(
        holdout, variants, run_records(variants, holdout, seed=7), _settings()
    )
    assert "Seed 42." in str(before["README.md"]) and "Seed 7." in str(
        after["README.md"]
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            {"commit": "c0ffee" * 6 + "ab", "dirty": False},
            [
                "`" + "c0ffee" * 6 + "ab` (clean tree)",
                "git checkout " + "c0ffee" * 6 + "ab",
            ],
        ),
        (
            {"commit": "c0ffee" * 6 + "ab", "dirty": True},
            ["**dirty**", "git checkout " + "c0ffee" * 6 + "ab"],
        ),
        (
            {"commit": None, "dirty": None},
            [
                "not run from a git checkout",
                "the commit is unknown (not a git checkout)",
            ],
        ),
    ],
)
def test_the_reproduce_section_names_the_codes_commit(
    variants: dict[str, pd.DataFrame],
    holdout: pd.DataFrame,
    code: dict,
    expected: list[str],
) -> None:
    records = run_records(variants, holdout)
    records = dataclasses.replace(records, run_command={**records.run_command, **code})
    card = str(dataset_folder(holdout, variants, records, _settings())["README.md"])
    reproduce = card.split("## Reproduce")[1].split("\n## ", maxsplit=1)[0]
    for text in expected:
        assert text in reproduce
    assert ".venv/bin/kedro run" in reproduce


def test_records_that_do_not_match_the_split_report_are_refused(
    variants: dict[str, pd.DataFrame], holdout: pd.DataFrame
) -> None:
    records = run_records(variants, holdout)
    stale = {**variants, "small": variants["small"].iloc[:4]}
    with pytest.raises(
        ValueError, match=r"small.train_data does not match split_report"
    ):
        dataset_folder(holdout, stale, records, _settings())


def test_exports_hold_the_same_prompts_and_answers(
    tmp_path: Path, variants: dict[str, pd.DataFrame], holdout: pd.DataFrame
) -> None:
    files = dataset_folder(
        holdout,
        variants,
        run_records(variants, holdout),
        _settings(system_prompt="你是助手。"),
    )
    folder = _write(tmp_path, files)
    frame = variants["large"]
    prompts = [
        build_prompt(i, x)
        for i, x in zip(frame["instruction"], frame["input"], strict=True)
    ]
    belle = [json.loads(line) for line in (folder / "exports/belle/large.jsonl").open()]
    alpaca = json.loads(
        (folder / "exports/alpaca/large.json").read_text(encoding="utf-8")
    )
    assert (
        belle == alpaca == frame[["instruction", "input", "output"]].to_dict("records")
    )
    sharegpt = json.loads(
        (folder / "exports/sharegpt/large.json").read_text(encoding="utf-8")
    )
    assert [build_prompt(r["conversations"][0]["value"]) for r in sharegpt] == prompts
    assert [r["conversations"][1]["value"] for r in sharegpt] == frame[
        "output"
    ].tolist()
    assert {r["system"] for r in sharegpt} == {"你是助手。"}
    messages = [
        json.loads(line) for line in (folder / "exports/messages/large.jsonl").open()
    ]
    assert [[t["role"] for t in r["messages"]] for r in messages] == [
        ["system", "user", "assistant"]
    ] * len(frame)
    assert [build_prompt(r["messages"][1]["content"]) for r in messages] == prompts


def test_dataset_info_names_every_export_as_llama_factory_documents(
    tmp_path: Path, variants: dict[str, pd.DataFrame], holdout: pd.DataFrame
) -> None:
    folder = _write(
        tmp_path,
        dataset_folder(holdout, variants, run_records(variants, holdout), _settings()),
    )
    info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
    assert len(info) == 3 * 4
    for name, entry in info.items():
        assert (folder / entry["file_name"]).is_file(), name
        formatting = entry.get("formatting", "alpaca")
        assert formatting in ("alpaca", "sharegpt")
        if formatting == "alpaca":
            assert entry["columns"] == {
                "prompt": "instruction",
                "query": "input",
                "response": "output",
            }
        else:
            rows = json.loads(
                (folder / entry["file_name"]).read_text(encoding="utf-8")
                if entry["file_name"].endswith(".json")
                else "["
                + ",".join((folder / entry["file_name"]).read_text().split("\n")[:-1])
                + "]"
            )
            tags = {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
                **entry.get("tags", {}),
            }
            turns = rows[0][entry["columns"]["messages"]]
            assert [t[tags["role_tag"]] for t in turns] == [
                tags["user_tag"],
                tags["assistant_tag"],
            ]
            assert all(tags["content_tag"] in t for t in turns)


@pytest.mark.parametrize(
    ("count", "bucket"),
    [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (2_000_000, "1M<n<10M")],
)
def test_size_category_buckets(count: int, bucket: str) -> None:
    assert size_category(count) == bucket


def test_a_failed_save_leaves_the_old_folder_whole(tmp_path: Path) -> None:
    dataset = FolderDataset(filepath=str(tmp_path / "out"))
    dataset.save({"a.txt": "old"})

    def broken(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("killed")

    with pytest.raises(DatasetError, match="killed"):
        dataset.save({"a.txt": "new", "model": broken})
    assert (tmp_path / "out" / "a.txt").read_text() == "old"
    assert not (tmp_path / "out" / "model").exists()
    dataset.save({"b.txt": "new"})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.txt"]
    with pytest.raises(DatasetError, match="not a path inside"):
        dataset.save({"../escape.txt": "x"})
