"""Logging, registering and loading back models in a real (temporary sqlite) MLflow store."""

from __future__ import annotations

import copy
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from belle_kedro.common.template import build_prompt
from belle_kedro.pipelines.evaluate.answering import (
    generate_answers,
    load_registered_model,
)
from belle_kedro.pipelines.train import model_registry as registry
from belle_kedro.pipelines.train.models import load_model_and_tokenizer
from tests.support.training import settings_of, tiny_config, with_changes


def tiny_model(method: str = "full", seed: int = 0):
    lora = {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0}
    return load_model_and_tokenizer(
        settings_of(
            with_changes(
                tiny_config(),
                seed=seed,
                model={"tiny_bloom": {"n_layer": 1, "hidden_size": 32, "n_head": 2}},
                finetuning={"method": method, "lora": lora},
            )
        )
    )


@pytest.mark.slow
def test_versions_are_registered_tagged_and_load_back_and_answer(mlflow_store):
    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("registry-test")
    model, tokenizer = tiny_model()
    with mlflow.start_run() as run:
        first = registry.log_and_register(
            model,
            tokenizer,
            registered_model_name="belle-test",
            source=registry.TrainedFrom("small", 24, "d" * 64, "fp-small", "tiny"),
            keep_adapter=False,
        )
        second = registry.log_and_register(
            model,
            tokenizer,
            registered_model_name="belle-test",
            source=registry.TrainedFrom("medium", 48, "e" * 64, "fp-medium", "tiny"),
            keep_adapter=False,
        )
    assert first == {
        "registered_model_name": "belle-test",
        "version": "1",
        "model_uri": "models:/belle-test/1",
        "variant": "small",
        "train_size": 24,
        "data_digest": "d" * 64,
        "run_id": run.info.run_id,
    }
    assert second["version"] == "2"
    version = MlflowClient().get_model_version("belle-test", "2")
    assert version.tags == {
        "variant": "medium",
        "train_size": "48",
        "data_digest": "e" * 64,
        "base_model": "tiny",
        "run_fingerprint": "fp-medium",
    }
    assert version.run_id == run.info.run_id
    # A rerun of the same run folder finds its version instead of registering another.
    small = registry.TrainedFrom("small", 24, "d" * 64, "fp-small", "tiny")
    assert registry.find_registered("belle-test", small) == first
    other_folder = registry.TrainedFrom("small", 24, "d" * 64, "fp-other", "tiny")
    assert registry.find_registered("belle-test", other_folder) is None

    info = mlflow.models.get_model_info(first["model_uri"])
    assert info.metadata is not None
    assert info.metadata["prompt_template"] == build_prompt(
        "{prompt}"
    )  # serving wraps questions in it
    assert info.metadata["variant"] == "small"
    assert info.signature is not None and info.saved_input_example_info is not None
    requirements = Path(
        mlflow.artifacts.download_artifacts(f"{first['model_uri']}/requirements.txt")
    ).read_text()
    assert f"torch=={torch.__version__.split('+')[0]}" in requirements.splitlines()

    # MLflow's own pipeline loads it too, and returns the prompt with the continuation.
    generator = mlflow.transformers.load_model(first["model_uri"])
    reply = generator(
        build_prompt("你好"), max_new_tokens=6, min_new_tokens=6, do_sample=False
    )
    assert reply[0]["generated_text"].startswith(build_prompt("你好"))
    loaded, loaded_tokenizer = load_registered_model(
        first["model_uri"], device="cpu", dtype="float32"
    )
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    prompts = [build_prompt("写一句诗", "关于春天"), build_prompt("你好")]
    encoded = loaded_tokenizer(
        prompts[0], add_special_tokens=False, return_tensors="pt"
    )
    continuation = loaded.generate(
        **encoded, max_new_tokens=5, min_new_tokens=5, do_sample=False
    )
    assert continuation.shape[1] == encoded["input_ids"].shape[1] + 5
    # Batched, left-padded answers equal each prompt answered on its own.
    batched = generate_answers(
        loaded, loaded_tokenizer, prompts, max_new_tokens=4, batch_size=2,
        temperature=0.0, top_p=1.0,
    )  # fmt: skip
    alone = [
        generate_answers(
            loaded, loaded_tokenizer, [prompt], max_new_tokens=4, batch_size=1,
            temperature=0.0, top_p=1.0,
        )[0]
        for prompt in prompts
    ]  # fmt: skip
    assert batched == alone


@pytest.mark.slow
def test_lora_on_a_local_base_is_merged_before_logging(mlflow_store):
    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("registry-test")
    model, tokenizer = tiny_model("lora")
    with torch.no_grad():  # a non-zero adapter, so merging changes the weights
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.fill_(0.01)
    expected = copy.deepcopy(model).merge_and_unload().state_dict()
    assert not torch.equal(
        expected["transformer.h.0.self_attention.query_key_value.weight"],
        model.base_model.model.state_dict()[
            "transformer.h.0.self_attention.query_key_value.base_layer.weight"
        ],
    )
    with mlflow.start_run():
        record = registry.log_and_register(
            model,
            tokenizer,
            registered_model_name="belle-lora",
            source=registry.TrainedFrom("small", 8, "f" * 64, "fp-lora", "tiny"),
            keep_adapter=False,
        )
    loaded, _ = load_registered_model(
        record["model_uri"], device="cpu", dtype="float32"
    )
    assert type(loaded).__name__ == "BloomForCausalLM"
    for name, tensor in expected.items():
        assert torch.allclose(loaded.state_dict()[name], tensor), name


def test_logging_needs_the_variant_run(mlflow_store):
    mlflow.set_tracking_uri(mlflow_store)
    model, tokenizer = tiny_model()
    with pytest.raises(RuntimeError, match="active MLflow run"):
        registry.log_and_register(
            model,
            tokenizer,
            registered_model_name="x",
            source=registry.TrainedFrom("v", 1, "0", "fp", "tiny"),
            keep_adapter=False,
        )


def test_pip_requirements_are_pinned():
    pins = registry.pip_requirements(with_peft=True)
    assert all("==" in pin for pin in pins)
    assert {pin.split("==")[0] for pin in pins} >= {"torch", "transformers", "peft"}
