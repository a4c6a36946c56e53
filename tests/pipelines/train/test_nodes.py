"""Pure train nodes: parameter flattening without secrets, holdout sampling, the summary."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from belle_kedro.common.records import records_digest
from belle_kedro.pipelines.train.launcher import holdout_sample
from belle_kedro.pipelines.train.nodes import describe_training_data, summarise_training
from belle_kedro.pipelines.train.tracking import flatten_params
from tests.support.records import make_records


def test_flattened_params_drop_anything_that_looks_like_a_secret():
    params = {
        "trainer": {"learning_rate": 3e-6, "hub_token": "hf_abc"},
        "model": {"name_or_path": "bigscience/bloomz-7b1-mt", "api_key": "sk-123"},
        "Password": "x",
        "lora": {"target_modules": ["query_key_value"]},
        # Not secrets: which tokenizer, and the name of the variable holding a key.
        "tokenizer": "bytes",
        "llm": {"api_key_env": "OPENAI_API_KEY"},
    }
    flat = flatten_params(params, "train.")
    assert flat == {
        "train.trainer.learning_rate": "3e-06",
        "train.model.name_or_path": "bigscience/bloomz-7b1-mt",
        "train.lora.target_modules": "['query_key_value']",
        "train.tokenizer": "bytes",
        "train.llm.api_key_env": "OPENAI_API_KEY",
    }
    assert not any(
        secret in value for value in flat.values() for secret in ("hf_abc", "sk-123")
    )


def test_holdout_sample_is_seeded_and_capped():
    holdout = make_records(40)
    first = holdout_sample(holdout, 16, seed=3)
    assert len(first) == 16
    assert first.equals(holdout_sample(holdout, 16, seed=3))
    assert not first.equals(holdout_sample(holdout, 16, seed=4))
    assert len(holdout_sample(holdout, None, seed=3)) == 40


def test_lineage_names_the_variant_data_and_its_digest():
    train, holdout = make_records(12), make_records(4, seed=2)
    lineage = describe_training_data(train, holdout, variant="small")
    assert lineage == {
        "variant": "small",
        "dataset_name": "small.train_data",
        "train_size": 12,
        "data_digest": records_digest(train),
        "holdout_size": 4,
        "holdout_digest": records_digest(holdout),
    }


def test_summary_reports_final_figures_at_the_last_step_and_plots_both_losses():
    result = {
        "variant": "small",
        "global_step": 6,
        "tokens_per_second": 1500.0,
        "padding_waste": 0.03,
        "train_loss": 4.2,
        "eval_loss": None,
        "train_runtime_s": 2.5,
        "train_examples": 24,
        "bad_records": 2,
        "dropped_examples": 1,
        "log_history": [
            {"step": 1, "loss": 5.0},
            {"step": 3, "eval_loss": 4.8},
            {"step": 6, "loss": 3.9},
            {"step": 6, "eval_loss": 4.1},
        ],
    }
    metrics, figure = summarise_training(result)
    assert metrics["padding_waste"] == {"value": 0.03, "step": 6}
    assert "eval_loss" not in metrics  # None is not a metric
    assert metrics["bad_records"] == {"value": 2, "step": 6}
    assert isinstance(figure, Figure)
    lines = {
        line.get_label(): np.asarray(line.get_xdata()).tolist()
        for line in figure.axes[0].get_lines()
    }
    assert lines == {"train loss": [1, 6], "eval loss (holdout)": [3, 6]}
