"""The `belle` environment: everything resolves, the recipe is BELLE's, and it runs on CPU.

The recipe itself (BLOOMZ-7B1-mt, DeepSpeed ZeRO-2 over 8 GPUs) cannot train here, so the
end-to-end run swaps in the tiny offline model by parameter overrides only: the env's
other choices (its split sizes' nesting, the every-variant mix-in, bf16 evaluation
weights, the evaluation flow) run as configured.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from belle_kedro.hooks.run_command import RUN_COMMAND
from tests.support.project import open_session
from tests.support.records import make_records

ENV_DEFAULT = re.compile(r"\$\{oc\.env:[A-Z_]+,([^}]*)\}")


def declared_catalog(project: Path, env: str) -> dict[str, dict]:
    """conf/base's catalog entries with conf/<env>'s replacing them (Kedro's rule), with
    ``{variant}`` patterns filled in as ``small`` and ``${oc.env:X,default}`` as default."""
    entries: dict[str, dict] = {}
    for folder in ("base", env):
        for path in sorted((project / "conf" / folder).glob("catalog*.yml")):
            text = ENV_DEFAULT.sub(r"\1", path.read_text(encoding="utf-8"))
            entries.update(yaml.safe_load(text.replace("{variant}", "small")) or {})
    return {name: entry for name, entry in entries.items() if not name.startswith("_")}


def check_entry(catalog, project: Path, name: str, entry: dict) -> None:
    """The catalog built ``name`` as its YAML entry says: class, file and versioning."""
    dataset = catalog.get(name)
    inner = entry.get("dataset")
    declared_type = inner["type"] if isinstance(inner, dict) else entry["type"]
    class_name = declared_type.rsplit(".", 1)[-1]
    if entry["type"].startswith(
        ("kedro_mlflow.io.artifacts", "belle_kedro.datasets.versioned")
    ):
        class_name = (
            f"Mlflow{class_name}"  # kedro-mlflow's wrapper class of the inner type
        )
    assert type(dataset).__name__ == class_name, (name, type(dataset), declared_type)
    if declared_type.startswith("belle_kedro."):
        # kedro-mlflow's wrapper subclasses the inner class: this holds for both.
        module, _, declared_class = declared_type.rpartition(".")
        assert isinstance(
            dataset, getattr(importlib.import_module(module), declared_class)
        ), name
    filepath = (inner if isinstance(inner, dict) else entry).get("filepath")
    if filepath is not None and hasattr(dataset, "_filepath"):
        assert Path(str(dataset._filepath)) == (project / filepath).resolve(), name
    versioned = getattr(dataset, "_version", None) is not None
    assert versioned == bool(entry.get("versioned")), name


@pytest.mark.slow
def test_every_pipeline_and_dataset_resolves_and_the_recipe_is_belles(
    kedro_project, monkeypatch
):
    for variable in ("BELLE_EVAL_SET", "BELLE_EVAL_PROMPT", "ALPACA_EN_JSON"):
        monkeypatch.delenv(variable, raising=False)  # the entries' defaults apply
    from kedro.framework.project import pipelines

    with open_session(kedro_project, env="belle") as session:
        context = session.load_context()
        catalog = context.catalog
        params = context.params
        declared = declared_catalog(kedro_project, "belle")
        assert len(declared) > 30
        for name, entry in declared.items():
            check_entry(catalog, kedro_project, name, entry)
        for name, pipeline in pipelines.items():
            assert pipeline.nodes, name
            # What a pipeline reads from outside must come from the catalog (factory
            # patterns such as "{variant}.train_data" resolve here too).
            for dataset in pipeline.inputs():
                # run_command is the one input a hook supplies (RunCommandHook).
                if not dataset.startswith("params:") and dataset != RUN_COMMAND:
                    assert catalog.get(dataset) is not None, f"{name}: {dataset}"

    train = params["train"]
    assert train["model"]["name_or_path"] == "bigscience/bloomz-7b1-mt"
    assert train["model"]["dtype"] == "bfloat16"
    assert train["finetuning"]["method"] == "full"
    trainer = train["trainer"]
    assert trainer["bf16"] is True
    global_batch = (
        trainer["per_device_train_batch_size"]
        * trainer["gradient_accumulation_steps"]
        * train["launcher"]["nproc_per_node"]
        * train["launcher"]["nnodes"]
    )
    assert global_batch == 64
    assert trainer["learning_rate"] == pytest.approx(3e-6)
    assert trainer["num_train_epochs"] == 2
    assert trainer["lr_scheduler_type"] == "constant"
    deepspeed = json.loads(
        (kedro_project / train["deepspeed"]).read_text(encoding="utf-8")
    )
    assert deepspeed["zero_optimization"]["stage"] == 2
    assert deepspeed["bf16"]["enabled"] == "auto"  # follows trainer.bf16
    assert params["split"]["variant_sizes"] == {
        "small": 200_000,
        "medium": 600_000,
        "large": 1_000_000,
        "xlarge": 2_000_000,
    }
    generation = params["evaluate"]["generation"]
    assert generation["device"] == "auto" and generation["dtype"] == "bfloat16"
    assert generation["max_new_tokens"] == 512
    assert params["evaluate"]["judge"]["enabled"] is True


# Only what the CPU forces: the model, DeepSpeed/GPU launch, sizes, and the paid judge.
CPU_VARIANT_SIZES = {"small": 16, "medium": 24, "large": 32, "xlarge": 40}
CPU_MIX_IN_SIZE = 4
CPU_OVERRIDES = {
    "split": {
        "holdout_size": 16,
        "variant_sizes": CPU_VARIANT_SIZES,
        "mix_in": {"size": CPU_MIX_IN_SIZE},
    },
    "train": {
        "model": {
            "source": "tiny_bloom",
            "name_or_path": None,
            "tokenizer": "bytes",
            "dtype": "float32",
        },
        "finetuning": {"keep_adapter": False},
        "data": {"max_length": 256},
        "eval": {"max_examples": 8},
        "deepspeed": None,
        "launcher": {"nproc_per_node": 1},
        "trainer": {
            "num_train_epochs": 1,
            "learning_rate": 3.0e-3,
            "bf16": False,
            "activation_checkpointing": False,
            "dataloader_num_workers": 0,
            "logging_steps": 1,
            "eval_steps": 4,
            "save_steps": 4,
            "disable_tqdm": True,
        },
    },
    "evaluate": {
        "questions": {"max_per_class": 1},
        "generation": {"max_new_tokens": 4},
        "judge": {"enabled": False},
    },
}


@pytest.mark.slow
def test_belle_train_and_evaluate_run_on_cpu_with_the_tiny_model(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch
):

    alpaca = kedro_project / "data" / "01_raw" / "alpaca_test.json"
    english = make_records(8, seed=3)
    alpaca.write_text(
        json.dumps(
            english.loc[:, ["instruction", "input", "output"]].to_dict("records")
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("ALPACA_EN_JSON", str(alpaca))
    with open_session(
        kedro_project, env="belle", runtime_params=CPU_OVERRIDES
    ) as session:
        session.load_context().catalog.save(
            "clean_instructions", make_records(140, seed=5)
        )
    with open_session(
        kedro_project, env="belle", runtime_params=CPU_OVERRIDES
    ) as session:
        session.run(pipeline_names=["split", "train", "evaluate"])

    client = MlflowClient()
    versions = client.search_model_versions("name = 'belle-7b-sft'")
    assert sorted(version.tags["variant"] for version in versions) == sorted(
        CPU_VARIANT_SIZES
    )
    experiment = client.get_experiment_by_name("belle_kedro")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert all(run.info.status == "FINISHED" for run in runs)
    children = [run for run in runs if "belle.variant" in run.data.tags]
    assert sorted(run.data.tags["belle.variant"] for run in children) == sorted(
        CPU_VARIANT_SIZES
    )
    for child in children:
        # Every variant mixes in the same English sample (belle's every_variant mode).
        assert int(child.data.params["train_size"]) == (
            CPU_VARIANT_SIZES[child.data.tags["belle.variant"]] + CPU_MIX_IN_SIZE
        )
        assert "train.train_loss" in child.data.metrics
        # evaluate answered on the resolved device and logged into the same child
        assert any(name.startswith("evaluate") for name in child.data.metrics)
        assert child.data.params["train.trainer.per_device_train_batch_size"] == "2"
        assert child.data.params["train.trainer.gradient_accumulation_steps"] == "4"


@pytest.mark.slow
def test_belle_env_reads_belles_eval_files_unchanged_from_their_paths(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:

    from belle_kedro.datasets.eval_set import eval_set_digest, load_eval_set

    # BELLE's shapes: JSON Lines, "closed\u00a0qa" in the eval set, "closed\u00a0QA" and
    # an extra class in the prompts (written here, not BELLE's text).
    eval_set = tmp_path / "eval_set.json"
    eval_set.write_text(
        json.dumps({"question": "天空为什么是蓝色的？", "std_answer": "瑞利散射。",
                    "class": "closed\u00a0qa"}, ensure_ascii=False) + "\n"
        + json.dumps({"question": "写一首关于秋天的短诗。", "std_answer": "",
                      "class": "generation"}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    prompts = tmp_path / "eval_prompt.json"
    prompts.write_text(
        "".join(
            json.dumps({"class": name, "prompt": f"请评价{name}类的回答，按“得分: x”给出0到1之间的分数。"},
                       ensure_ascii=False) + "\n"
            for name in ("closed\u00a0QA", "generation", "translation")
        ),
        encoding="utf-8",
    )  # fmt: skip
    monkeypatch.setenv("BELLE_EVAL_SET", str(eval_set))
    monkeypatch.setenv("BELLE_EVAL_PROMPT", str(prompts))

    with open_session(kedro_project, env="belle") as session:
        catalog = session.load_context().catalog
        loaded = catalog.load("eval_set")
        judge_prompts = catalog.load("judge_prompts")

    assert eval_set_digest(loaded) == eval_set_digest(load_eval_set(eval_set))
    assert list(loaded["class"]) == ["closed qa", "generation"]
    assert len(judge_prompts) == 3
