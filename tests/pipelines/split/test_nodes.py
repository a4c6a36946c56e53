"""The split: held-out set without overlap, nested and deterministic variants."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from belle_kedro.common.config import ParameterError
from belle_kedro.common.text import similarity_key
from belle_kedro.pipelines.split import sampling
from belle_kedro.pipelines.split.nodes import (
    build_variants,
    mix_into_pool,
    split_holdout,
    summarise_split,
)
from belle_kedro.pipelines.split.pipeline import create_pipeline

CATEGORIES = ["math", "code", "open qa", None]


def _records(n: int, prefix: str = "题目") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "instruction": [f"{prefix}{i}：请说明第{i}个问题的要点" for i in range(n)],
            "input": ["" if i % 3 else f"材料{i}" for i in range(n)],
            "output": [f"回答{i}" for i in range(n)],
            "category": [CATEGORIES[i % len(CATEGORIES)] for i in range(n)],
        }
    )


def _params(**overrides) -> dict:
    params = {
        "seed": 7,
        "holdout_size": 20,
        "holdout_fraction": None,
        "variant_sizes": {"s": 10, "m": 30, "l": 60},
        "mix_in": {"mode": "pool", "size": None},
    }
    params.update(overrides)
    return params


def _keys(frame: pd.DataFrame) -> set[str]:
    return set(frame["instruction"].map(similarity_key))


def test_holdout_is_stratified_and_never_overlaps_training() -> None:
    records = _records(200)
    # An exact repeat of a record must not end up on both sides of the split.
    records = pd.concat([records, records.iloc[:40]], ignore_index=True)
    holdout, pool = split_holdout(records, _params())
    assert len(holdout) == 20
    assert not _keys(holdout) & _keys(pool)
    counts = holdout["category"].fillna("<unknown>").value_counts()
    assert sorted(counts.tolist()) == [5, 5, 5, 5]


def test_variants_are_nested_deterministic_and_order_independent() -> None:
    records = _records(150)
    params = _params()
    holdout, pool = split_holdout(records, params)
    variants = build_variants(pool, holdout, records.iloc[:0], params)
    assert [len(variants[name]) for name in ("s", "m", "l")] == [10, 30, 60]
    assert _keys(variants["s"]) <= _keys(variants["m"]) <= _keys(variants["l"])
    for variant in variants.values():
        assert not _keys(variant) & _keys(holdout)

    shuffled = records.sample(frac=1.0, random_state=3)
    holdout2, pool2 = split_holdout(shuffled, params)
    variants2 = build_variants(pool2, holdout2, records.iloc[:0], params)
    assert _keys(holdout2) == _keys(holdout)
    for name in variants:
        assert variants2[name].equals(variants[name])

    other_seed = build_variants(pool, holdout, records.iloc[:0], _params(seed=8))
    assert _keys(other_seed["s"]) != _keys(variants["s"])


def test_mix_in_modes() -> None:
    records = _records(100)
    extra = _records(30, prefix="English task ")
    pooled = mix_into_pool(records, extra, _params(mix_in={"mode": "pool", "size": 12}))
    assert len(pooled) == 112

    params = _params(mix_in={"mode": "every_variant", "size": 5})
    holdout, pool = split_holdout(records, params)
    variants = build_variants(pool, holdout, extra, params)
    extra_keys = _keys(extra)
    assert [len(_keys(v) & extra_keys) for v in variants.values()] == [5, 5, 5]


def test_too_large_a_variant_is_a_clear_error() -> None:
    records = _records(40)
    params = _params(variant_sizes={"huge": 500})
    holdout, pool = split_holdout(records, params)
    with pytest.raises(ValueError, match=r"variant_sizes\.huge asks for 500"):
        build_variants(pool, holdout, records.iloc[:0], params)
    with pytest.raises(ValueError, match="only 40 records"):
        split_holdout(records, _params(holdout_size=40))


def test_an_empty_clean_output_is_a_clear_error() -> None:
    empty = _records(0)
    pool = mix_into_pool(empty, empty, _params())
    with pytest.raises(ValueError, match="pool holds no records.*clean_report"):
        split_holdout(pool, _params())


def test_summary_reports_sizes_and_digests() -> None:
    records = _records(120)
    params = _params()
    holdout, pool = split_holdout(records, params)
    variants = build_variants(pool, holdout, records.iloc[:0], params)
    report = summarise_split(holdout, params["seed"], **variants)
    assert report["holdout"]["size"] == 20
    assert {name: v["size"] for name, v in report["variants"].items()} == {
        "s": 10,
        "m": 30,
        "l": 60,
    }
    assert report["variants"]["s"]["digest"] != report["variants"]["m"]["digest"]


def test_split_pipeline_runs_on_an_in_memory_catalog() -> None:
    names = ["tiny", "mid", "big"]
    sizes = {name: 10 * (i + 1) for i, name in enumerate(names)}
    params = _params(variant_sizes=sizes, mix_in={"mode": "pool", "size": None})
    catalog = DataCatalog(
        {
            "clean_instructions": MemoryDataset(_records(120)),
            "mix_in_instructions": MemoryDataset(_records(20, prefix="种子")),
            "params:split": MemoryDataset(params),
            "params:split.seed": MemoryDataset(params["seed"]),
        }
    )
    SequentialRunner().run(create_pipeline(names), catalog)
    report = catalog.load("split_report")
    assert {name: v["size"] for name, v in report["variants"].items()} == sizes


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"holdout_size": None},
            r"^split\.holdout_size or holdout_fraction: set exactly one",
        ),
        (
            {"holdout_fraction": 0.1},
            r"^split\.holdout_size or holdout_fraction: set exactly one",
        ),
        (
            {"mix_in": {"mode": "always", "size": None}},
            r"^split\.mix_in\.mode must be one of",
        ),
        (
            {"variant_sizes": {"s": "ten"}},
            r"^split\.variant_sizes\.s must be an integer",
        ),
    ],
)
def test_a_mis_set_split_key_is_named_before_any_record_moves(
    changes: dict, message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        split_holdout(_records(40), _params(**changes))


def test_a_holdout_fraction_alone_sets_the_holdout_size() -> None:
    holdout, _ = split_holdout(
        _records(100), _params(holdout_size=None, holdout_fraction=0.25)
    )
    assert len(holdout) == 25


def test_split_order_is_score_then_key_then_position_as_python_sorts_it():
    rng = random.Random(5)
    keys = pd.Series(
        [rng.choice(["b", "a", "春", "𠀀", "ab", "", "Z"]) for _ in range(300)],
        dtype=str,
    )
    score = np.array([rng.choice([0.25, 0.5, 0.75]) for _ in range(300)])
    expected = sorted(range(300), key=lambda i: (score[i], keys.iat[i]))
    assert sampling._ranked(score, keys).tolist() == expected
