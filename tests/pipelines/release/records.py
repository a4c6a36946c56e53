"""Run records as the upstream stages save them, for release tests without a full run."""

from __future__ import annotations

from typing import Any

import pandas as pd

from belle_kedro.common.records import records_digest
from belle_kedro.pipelines.release.dataset_folder import RunRecords


def instruction_frame(count: int, tag: str) -> pd.DataFrame:
    """``count`` distinct records (every third with an input), with provenance."""
    return pd.DataFrame(
        {
            "instruction": [f"{tag}问题{i}：请解释第{i}个概念。" for i in range(count)],
            "input": ["补充说明" if i % 3 == 0 else "" for i in range(count)],
            "output": [f"回答{i}：这是说明。\n第二行" for i in range(count)],
            "category": ["open qa" if i % 2 else None for i in range(count)],
            "source": ["zh_seed_tasks"] * count,
            "request_id": [None] * count,
        }
    )


def run_records(
    variants: dict[str, pd.DataFrame], holdout: pd.DataFrame, seed: int = 42
) -> RunRecords:
    """RunRecords consistent with ``variants`` (sizes, digests) as split would report."""
    split_report = {
        "seed": seed,
        "holdout": {"size": len(holdout), "digest": records_digest(holdout)},
        "variants": {
            name: {
                "size": len(frame),
                "digest": records_digest(frame),
                "holdout_overlap": 0,
            }
            for name, frame in variants.items()
        },
    }
    versions = {
        name: {
            "registered_model_name": "belle-sft",
            "version": str(index + 1),
            "model_uri": f"models:/belle-sft/{index + 1}",
            "variant": name,
            "train_size": len(frame),
            "data_digest": records_digest(frame),
            "run_id": f"run{index}",
        }
        for index, (name, frame) in enumerate(variants.items())
    }
    macro = pd.DataFrame(
        [
            {
                "variant": name,
                "train_size": len(frame),
                "macro": 0.1 * (index + 1),
                "macro_ci_low": 0.05 * (index + 1),
                "macro_ci_high": 0.15 * (index + 1),
            }
            for index, (name, frame) in enumerate(variants.items())
        ]
    )
    last = list(variants)[-1]
    champion: dict[str, Any] = {
        "variant": last,
        "model_uri": versions[last]["model_uri"],
        "version": versions[last]["version"],
        "metric": "macro",
        "score": 0.2,
        "rule": "smallest_not_worse_than_best",
        "rule_description": "the smallest variant not worse than the best",
        "alias": "champion",
    }
    return RunRecords(
        generation_summary={
            "backend": "local",
            "api": "completion",
            "model": "SmolLM2-135M-Instruct",
            "random_seed": 42,
            "instructions_target": 4,
            "requests_planned": 2,
            "responses_ok": 2,
            "responses_failed": 0,
            "responses_truncated": 1,
            "instructions_parsed": 2,
        },
        prompt_digest="p" * 64,
        seed_tasks_digest="s" * 64,
        seed_tasks_count=175,
        clean_report={
            "input_records": 10,
            "output_records": 7,
            "eval_set_digest": "e" * 64,
            "steps": [
                {"rule": "length", "enabled": True, "input": 10, "dropped": 2},
                {
                    "rule": "near_duplicates",
                    "enabled": True,
                    "input": 8,
                    "dropped": 1,
                    "threshold": 0.7,
                    "against_seed_tasks": True,
                },
                {
                    "rule": "decontamination",
                    "enabled": True,
                    "input": 7,
                    "dropped": 0,
                    "threshold": 0.7,
                    "eval_questions": 264,
                },
            ],
            "task_classes": {
                "classifier": {
                    "held_out_accuracy": 0.8818,
                    "classes": ["math", "rewrite"],
                },
                "kept_per_class": {"math": 4, "rewrite": 3},
                "dropped_per_rule_and_class": {
                    "length": {"math": 1, "code": 1},
                    "near_duplicates": {"math": 1},
                },
            },
        },
        split_report=split_report,
        model_versions=versions,
        eval_macro=macro,
        champion=champion,
        run_command={"env": "local", "runtime_params": {}, "command": "kedro run"},
        parent_run_id="parent0",
    )
