"""A LoRA variant through the real train path, registered, then released.

The train nodes fine-tune a tiny BLOOM with LoRA in a real (sqlite) MLflow store and
register it; the release nodes then describe the registry and export the version with a
tiny shard limit. What the registry and the folder hold is read back by MLflow, peft and
transformers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import mlflow
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from belle_kedro.common.template import build_prompt
from belle_kedro.datasets.folder import FolderDataset
from belle_kedro.pipelines.release.nodes import (
    export_models,
    set_registry_descriptions,
)
from belle_kedro.pipelines.train import nodes as train_nodes
from belle_kedro.pipelines.train.model_registry import INPUT_EXAMPLE
from belle_kedro.pipelines.train.models import (
    base_model_id,
    build_tiny_bloom,
    load_tokenizer,
)
from tests.support.project import base_parameters, merged
from tests.support.records import make_records
from tests.support.training import settings_of, tiny_config, with_changes

pytestmark = pytest.mark.slow

LORA = {"method": "lora", "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0}}
# Far below the tiny model's size, so its weights must be split into several shards.
SHARD_LIMIT = "100KB"
PROMPT = build_prompt("请用一句话介绍长城。")
COMMAND = {
    "env": "local",
    "runtime_params": {},
    "command": "kedro run",
    "commit": "0123abcd" * 5,
    "dirty": False,
}


def _eval_frames(variant: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = pd.DataFrame(
        [{"variant": variant, "class": "open qa", "count": 2, "mean": 0.5,
          "ci_low": 0.25, "ci_high": 0.75}]
    )  # fmt: skip
    macro = pd.DataFrame(
        [{"variant": variant, "train_size": 16, "macro": 0.5,
          "macro_ci_low": 0.25, "macro_ci_high": 0.75}]
    )  # fmt: skip
    return table, macro


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Train, register, describe and release one tiny LoRA variant."""
    root = tmp_path_factory.mktemp("lora_release")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)  # conf/base's relative data/ paths land here
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        mlflow.set_experiment("lora-release")
        train = with_changes(tiny_config(), finetuning=LORA)
        settings = settings_of(train)
        train_data, holdout = make_records(16), make_records(4, seed=1)
        with mlflow.start_run():
            lineage = train_nodes.describe_training_data(train_data, holdout, "small")
            result = train_nodes.fine_tune(train_data, holdout, lineage, train)
            version = train_nodes.register_model(result, lineage, train)
        champion = {
            **version,
            "alias": "champion",
            "rule_description": "the only variant",
            "metric": "macro",
            "score": 0.5,
        }
        table, macro = _eval_frames("small")
        descriptions = set_registry_descriptions(
            macro, champion, train, model_version__small=version
        )
        release = merged(
            base_parameters("release"),
            {"variants": "all", "model": {"max_shard_size": SHARD_LIMIT}},
        )
        files = export_models(
            table,
            eval_macro=macro,
            champion=champion,
            run_command=COMMAND,
            train_params=train,
            evaluate_params=base_parameters("evaluate"),
            release_params=release,
            model_version__small=version,
        )
        FolderDataset(filepath=str(root / "models")).save(files)
        yield {
            "folder": root / "models" / "small",
            "version": version,
            "settings": settings,
            "descriptions": descriptions,
        }


def _logits(model: Any, tokenizer: Any) -> torch.Tensor:
    ids = tokenizer(PROMPT, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return model.eval()(**ids).logits


def _registered(released: dict[str, Any]) -> dict[str, Any]:
    return mlflow.transformers.load_model(
        released["version"]["model_uri"], return_type="components"
    )


def test_the_version_carries_a_signature_and_an_input_example(
    released: dict[str, Any],
) -> None:
    uri = released["version"]["model_uri"]
    info = mlflow.models.get_model_info(uri)
    assert info.signature is not None
    assert info.signature.inputs.input_types() == [mlflow.types.DataType.string]
    assert info.signature.outputs.input_types() == [mlflow.types.DataType.string]
    assert info.signature.params is not None
    assert {param.name for param in info.signature.params} == {
        "do_sample",
        "max_new_tokens",
    }
    assert info.saved_input_example_info is not None
    model = mlflow.pyfunc.load_model(uri)
    example = model.input_example
    assert example == INPUT_EXAMPLE  # a bare question: the prompt template wraps it
    # Serving answers it as the registry says: a string in, one string out.
    answer = model.predict(example, params={"max_new_tokens": 3})
    assert isinstance(answer, list) and isinstance(answer[0], str)


def test_the_registered_model_and_its_version_are_described(
    released: dict[str, Any],
) -> None:
    version = released["version"]
    client = MlflowClient()
    model = client.get_registered_model(version["registered_model_name"])
    assert model.description and "Champion: version 1 (small)" in model.description
    described = client.get_model_version(
        version["registered_model_name"], version["version"]
    ).description
    assert described and version["data_digest"] in described
    assert "Macro score 0.5000 [0.2500, 0.7500]" in described
    assert (
        released["descriptions"]["versions"][f"{version['registered_model_name']}/1"]
        == described
    )


def test_the_lora_adapter_loads_onto_the_base_with_the_registered_logits(
    released: dict[str, Any],
) -> None:
    from peft import PeftModel

    adapter = released["folder"] / "adapter"
    assert {path.name for path in adapter.iterdir()} >= {
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    settings = released["settings"]
    assert config["base_model_name_or_path"] == base_model_id(settings.model)
    tokenizer = load_tokenizer(settings.model)
    base = build_tiny_bloom(tokenizer, settings.model.tiny_bloom, settings.seed)
    with_adapter = PeftModel.from_pretrained(base, adapter)
    registered = _registered(released)
    theirs = _logits(registered["model"], registered["tokenizer"])
    torch.testing.assert_close(
        _logits(with_adapter, tokenizer), theirs, rtol=1e-5, atol=1e-5
    )
    # The adapter changed the model: the bare base answers differently.
    bare = build_tiny_bloom(tokenizer, settings.model.tiny_bloom, settings.seed)
    assert not torch.allclose(_logits(bare, tokenizer), theirs, atol=1e-4)
    card = (released["folder"] / "README.md").read_text(encoding="utf-8")
    assert f"on the base `{base_model_id(settings.model)}`" in card
    assert f"git checkout {COMMAND['commit']}" in card


def test_weights_above_the_shard_limit_are_sharded_and_load_the_same(
    released: dict[str, Any],
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = released["folder"]
    index = json.loads(
        (folder / "model.safetensors.index.json").read_text(encoding="utf-8")
    )
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and not (folder / "model.safetensors").exists()
    assert all((folder / shard).is_file() for shard in shards)
    assert all((folder / shard).stat().st_size < 2 * 100_000 for shard in shards)
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    registered = _registered(released)
    torch.testing.assert_close(
        _logits(loaded, AutoTokenizer.from_pretrained(folder)),
        _logits(registered["model"], registered["tokenizer"]),
        rtol=1e-5,
        atol=1e-5,
    )
