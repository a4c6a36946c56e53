"""The default run's release, read by its real consumers.

One module-scoped Kedro run of every pipeline (smoke sizes, a short eval) in a temp
copy of the project; then ``datasets``, ``transformers``, TRL and the MLflow registry
read what it left, and a rerun with one upstream parameter changed changes the card.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from belle_kedro.common.template import build_prompt
from tests.support.project import make_project, open_session

# The whole default run sits in the first test's setup (11 min here on a loaded 2-core
# box), so the module allows more than the suite's 600 s per test.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# Smaller than conf/base so the whole run stays short; still every stage's real code.
SPLIT = {
    "holdout_size": 8,
    "variant_sizes": {"small": 8, "medium": 12, "large": 16, "xlarge": 20},
}
FAST = {
    "evaluate": {
        "questions": {"max_per_class": 1},
        "generation": {"max_new_tokens": 4},
    },
    "train": {"trainer": {"num_train_epochs": 1}},
    "split": SPLIT,
}
PROMPTS = [
    "请用一句话介绍长城。",
    "把下面的句子翻译成英文：\n今天天气很好。",
    "1+1等于几？",
]


def _end_runs() -> None:
    """End the run kedro-mlflow may leave on this thread (see tests/support/loopback)."""
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A whole default run; yields the project, its catalog outputs and the store."""

    root = tmp_path_factory.mktemp("release_run")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        monkeypatch.setenv("BELLE_MLFLOW_ARTIFACTS", str(root / "mlartifacts"))
        project = make_project(root, monkeypatch)
        with open_session(project, runtime_params=FAST) as session:
            session.run()
            _end_runs()
            catalog = session.load_context().catalog
            outputs = {
                name: catalog.load(name)
                for name in (
                    "release_dataset",
                    "release_models",
                    "split_report",
                    "champion",
                )
            }
            outputs["versions"] = {
                variant: catalog.load(f"{variant}.model_version")
                for variant in outputs["split_report"]["variants"]
            }
        yield {"project": project, "root": root, **outputs}


def test_load_dataset_reads_every_config(default_run: dict[str, Any]) -> None:
    datasets = pytest.importorskip("datasets")
    folder = Path(default_run["release_dataset"])
    report = default_run["split_report"]
    for name, entry in report["variants"].items():
        loaded = datasets.load_dataset(
            str(folder), name=name, cache_dir=str(default_run["root"] / "hf")
        )
        assert loaded["train"].num_rows == entry["size"]
        assert loaded["test"].num_rows == report["holdout"]["size"]
        assert set(loaded["train"].features) == {
            "instruction",
            "input",
            "output",
            "category",
            "source",
        }


def test_the_card_states_the_runs_own_figures(default_run: dict[str, Any]) -> None:
    card = (Path(default_run["release_dataset"]) / "README.md").read_text(
        encoding="utf-8"
    )
    project = default_run["project"]
    clean = json.loads(
        next(
            (project / "data/08_reporting/clean_report.json").rglob("*.json")
        ).read_text(encoding="utf-8")
    )
    assert clean["eval_set_digest"] in card
    assert (
        f"{clean['input_records']} records in, {clean['output_records']} kept" in card
    )
    for variant, entry in default_run["split_report"]["variants"].items():
        assert entry["digest"] in card
        assert default_run["versions"][variant]["run_id"] in card
    assert "Seed 42." in card
    assert "--params" in card and "split.variant_sizes.small=8" in card
    # make_project copies the tree without .git: the card says the commit is unknown.
    assert "not run from a git checkout" in card


def test_the_released_model_gives_the_registered_models_logits(
    default_run: dict[str, Any],
) -> None:
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    champion = default_run["champion"]
    folder = Path(default_run["release_models"]) / champion["variant"]
    card = (folder / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["pipeline_tag"] == "text-generation" and header["language"] == ["zh"]
    assert champion["model_uri"] in card
    released = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    registered = mlflow.transformers.load_model(
        champion["model_uri_alias"], return_type="components"
    )["model"].eval()
    for prompt in PROMPTS:
        ids = tokenizer(
            build_prompt(prompt), return_tensors="pt", add_special_tokens=False
        )
        with torch.no_grad():
            ours = released(**ids).logits
            theirs = registered(**ids).logits
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    generation = GenerationConfig.from_pretrained(folder)
    assert generation.max_new_tokens == 4 and generation.do_sample is False
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPTS[0]}], tokenize=False
    )
    assert chat == build_prompt(PROMPTS[0])


def test_the_registry_describes_the_model_and_each_version(
    default_run: dict[str, Any],
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    champion = default_run["champion"]
    model = client.get_registered_model(champion["registered_model_name"])
    assert model.description is not None
    assert f"version {champion['version']}" in model.description
    for variant, record in default_run["versions"].items():
        version = client.get_model_version(
            record["registered_model_name"], record["version"]
        )
        assert version.description is not None
        assert record["data_digest"] in version.description
        assert ("Macro score" in version.description) and (
            variant in version.description
        )
    champ = client.get_model_version(
        champion["registered_model_name"], champion["version"]
    )
    assert champ.description is not None
    assert "Champion" in champ.description
    # The runs that score with the eval set log it as an input (train and evaluate of
    # a variant share its child run).
    for record in default_run["versions"].values():
        run_inputs = client.get_run(record["run_id"]).inputs
        assert run_inputs is not None
        inputs = run_inputs.dataset_inputs
        contexts = {
            (item.dataset.name, tag.value)
            for item in inputs
            for tag in item.tags
            if tag.key == "mlflow.data.context"
        }
        assert ("eval_questions", "evaluation") in contexts


def test_trl_trains_two_steps_on_the_messages_export(
    default_run: dict[str, Any],
) -> None:
    pytest.importorskip("trl")
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    folder = Path(default_run["release_models"]) / default_run["champion"]["variant"]
    data = load_dataset(
        "json",
        data_files=str(
            Path(default_run["release_dataset"]) / "exports/messages/small.jsonl"
        ),
        cache_dir=str(default_run["root"] / "hf"),
    )["train"]
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(folder),
        processing_class=AutoTokenizer.from_pretrained(folder),
        train_dataset=data,
        args=SFTConfig(
            output_dir=str(default_run["root"] / "trl"),
            max_steps=2,
            per_device_train_batch_size=2,
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            dataloader_num_workers=0,
        ),
    )
    result = trainer.train()
    assert result.global_step == 2
    assert all(
        torch.isfinite(torch.tensor(entry["loss"]))
        for entry in trainer.state.log_history
        if "loss" in entry
    )


def test_a_changed_upstream_parameter_changes_the_card(
    default_run: dict[str, Any],
) -> None:

    project = default_run["project"]
    before = (Path(default_run["release_dataset"]) / "README.md").read_text(
        encoding="utf-8"
    )
    nodes = [
        "mix_into_pool",
        "split_holdout",
        "build_variants",
        "summarise_split",
        "build_dataset_folder",
    ]
    params = {**FAST, "split": {**SPLIT, "seed": 7}}
    with open_session(project, runtime_params=params) as session:
        session.run(node_names=nodes)
    _end_runs()
    after = (Path(default_run["release_dataset"]) / "README.md").read_text(
        encoding="utf-8"
    )
    assert "Seed 42." in before and "Seed 7." in after
    assert "split.seed=7" in after
