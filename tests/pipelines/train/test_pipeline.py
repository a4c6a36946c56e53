"""The train pipeline: one namespace per variant, and a real Kedro session of split + train."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from belle_kedro.pipelines.train import pipeline as train_pipeline
from tests.support.notebooks import run_notebook
from tests.support.project import base_parameters, open_session
from tests.support.records import make_records

VARIANT_NODES = {
    "describe_training_data",
    "fine_tune",
    "register_model",
    "summarise_training",
}


def test_one_namespaced_pipeline_per_variant():
    variants = ["small", "medium", "large"]
    pipeline = train_pipeline.create_pipeline(variants)
    assert {node.namespace for node in pipeline.nodes} == set(variants)
    for variant in variants:
        names = {node.name for node in pipeline.nodes if node.namespace == variant}
        assert names == {f"{variant}.{name}" for name in VARIANT_NODES}
    assert pipeline.inputs() == {
        "holdout",
        "params:train",
        *(f"{v}.train_data" for v in variants),
    }
    assert {f"{v}.model_version" for v in variants} <= pipeline.outputs()


def test_the_variant_list_drives_the_namespaces():
    pipeline = train_pipeline.create_pipeline(["tiny", "huge"])
    assert {node.namespace for node in pipeline.nodes} == {"tiny", "huge"}
    assert pipeline.only_nodes_with_namespaces(["tiny"]).inputs() == {
        "holdout",
        "params:train",
        "tiny.train_data",
    }


def _use_fixture_clean_instructions(project: Path, records: pd.DataFrame) -> str:
    """Keep only split's and train's catalogs, plus an env whose `clean_instructions` is a parquet file.

    Other pipelines' catalogs are dropped so this test exercises split + train alone
    (kedro-mlflow instantiates every catalog entry when a session starts).
    """
    for path in (project / "conf" / "base").glob("catalog_*.yml"):
        if path.stem.removeprefix("catalog_") not in ("split", "train"):
            path.unlink()
    env = "train_test"
    (project / "conf" / env).mkdir()
    path = project / "data" / "03_primary" / "clean_fixture.parquet"
    records.to_parquet(path, index=False)
    (project / "conf" / env / "catalog.yml").write_text(
        f"clean_instructions:\n  type: pandas.ParquetDataset\n  filepath: {path}\n",
        encoding="utf-8",
    )
    return env


@pytest.mark.slow
def test_kedro_run_split_and_train_tracks_parent_children_and_registered_versions(
    kedro_project,
):

    from belle_kedro.common.template import build_prompt
    from belle_kedro.pipelines.evaluate.answering import (
        generate_answers,
        load_registered_model,
    )

    env = _use_fixture_clean_instructions(kedro_project, make_records(160, seed=5))
    variants = list(base_parameters("split")["variant_sizes"])
    # One epoch keeps the test short; the default run's recipe is timed by `kedro run` itself.
    quick = {"train": {"trainer": {"num_train_epochs": 1, "eval_steps": 2}}}
    with open_session(kedro_project, env=env, runtime_params=quick) as session:
        session.run(pipeline_names=["split", "train"])

    client = MlflowClient()
    experiment = client.get_experiment_by_name("belle_kedro")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    children = [
        run
        for run in runs
        if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id
    ]
    assert sorted(run.info.run_name for run in children) == sorted(variants)

    versions = client.search_model_versions("name = 'belle-sft'")
    assert sorted(version.tags["variant"] for version in versions) == sorted(variants)
    by_variant = {run.info.run_name: run for run in children}
    for version in versions:
        child = by_variant[version.tags["variant"]]
        assert version.run_id == child.info.run_id
        assert version.tags["data_digest"] == child.data.params["data_digest"]
        assert version.tags["train_size"] == child.data.params["train_size"]

    # notebooks/compare_variants.ipynb tables exactly what this run logged.
    notebook, table = run_notebook("compare_variants.ipynb", kedro_project, "table")
    assert [row["variant"] for row in table] == variants  # smallest first
    for row in table:
        child = by_variant[row["variant"]]
        assert row["run_id"] == child.info.run_id
        assert row["final_train_loss"] == pytest.approx(
            child.data.metrics["train.train_loss"], rel=1e-9
        )
        assert row["padding_waste"] == pytest.approx(
            child.data.metrics["train.padding_waste"], rel=1e-9
        )
        version = next(v for v in versions if v.run_id == child.info.run_id)
        assert row["model_version"] == version.version
    assert any(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )  # the loss curves

    small = by_variant[variants[0]]
    train_loss = client.get_metric_history(small.info.run_id, "train_loss")
    eval_loss = client.get_metric_history(small.info.run_id, "eval_loss")
    assert len(train_loss) >= 3 and len(eval_loss) >= 2
    assert (
        sorted(train_loss, key=lambda m: m.step)[-1].value
        < sorted(train_loss, key=lambda m: m.step)[0].value
    )
    assert {
        "tokens_per_second",
        "train.tokens_per_second",
        "train.padding_waste",
    } <= set(small.data.metrics)
    assert small.data.params["train.finetuning.method"] == "full"
    assert small.inputs is not None
    assert [dataset.dataset.name for dataset in small.inputs.dataset_inputs] == [
        f"{variants[0]}.train_data",
        "holdout",
    ]
    assert any(
        a.path == "train" for a in client.list_artifacts(small.info.run_id)
    )  # the loss curve

    record_files = sorted(
        (
            kedro_project / "data" / "06_models" / variants[0] / "model_version.json"
        ).rglob("*.json")
    )
    record = json.loads(record_files[-1].read_text(encoding="utf-8"))
    assert record["model_uri"] == f"models:/belle-sft/{record['version']}"
    assert record["run_id"] == small.info.run_id
    model, tokenizer = load_registered_model(
        record["model_uri"], device="cpu", dtype="float32"
    )
    encoded = tokenizer(
        build_prompt("请介绍春天。"), add_special_tokens=False, return_tensors="pt"
    )
    output = model.generate(
        **encoded,
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    assert output.shape[1] > encoded["input_ids"].shape[1]
    # Evaluate's answering decodes exactly that greedy continuation.
    continuation = tokenizer.decode(
        output[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True
    )
    assert generate_answers(
        model,
        tokenizer,
        [build_prompt("请介绍春天。")],
        max_new_tokens=12,
        batch_size=1,
        temperature=0.0,
        top_p=1.0,
    ) == [continuation.strip()]

    # `kedro run --namespaces=<variant>` trains that variant alone.
    with open_session(kedro_project, env=env, runtime_params=quick) as session:
        session.run(pipeline_names=["train"], namespaces=[variants[0]])
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"]
    )
    newest_parent = next(
        run for run in runs if "mlflow.parentRunId" not in run.data.tags
    )
    new_children = [
        run
        for run in runs
        if run.data.tags.get("mlflow.parentRunId") == newest_parent.info.run_id
    ]
    assert [run.info.run_name for run in new_children] == [variants[0]]
    # The variant finished with the same data and config: reused, not trained again.
    assert new_children[0].data.tags["belle.reused"] == small.info.run_id
    assert "train_loss" not in new_children[0].data.metrics
    assert len(client.search_model_versions("name = 'belle-sft'")) == len(variants)
    # train.force retrains and registers a new version on purpose.
    forced = {"train": {**quick["train"], "force": True}}
    with open_session(kedro_project, env=env, runtime_params=forced) as session:
        session.run(pipeline_names=["train"], namespaces=[variants[0]])
    assert len(client.search_model_versions("name = 'belle-sft'")) == len(variants) + 1
