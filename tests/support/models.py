"""Tiny registered models for evaluate and serving tests (real MLflow registry, real weights).

A one-layer BLOOM with SmolLM2's tokenizer logs, registers and loads in about a second.
``memorising_bloom`` trains one for a few dozen steps on (question, answer) pairs through
the shared template, so a test can tell whether a consumer applied that template.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import torch

from belle_kedro.common.template import IGNORE_INDEX, encode_example
from belle_kedro.pipelines.train.model_registry import TrainedFrom, log_and_register
from belle_kedro.pipelines.train.models import build_tiny_bloom, load_smollm2_tokenizer
from belle_kedro.pipelines.train.settings import TinyBloomSettings

TINY = TinyBloomSettings(n_layer=1, hidden_size=16, n_head=2)
REGISTERED_MODEL = "belle-eval-test"


@functools.cache
def smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer, converted from the GGUF once per machine (outside the checkout)."""
    return load_smollm2_tokenizer(
        Path(tempfile.gettempdir()) / "belle_kedro_tests" / "tokenizers"
    )


def use_store(tracking_uri: str, artifacts: str | Path) -> None:
    """Point this process's MLflow at a test store, artifacts under ``artifacts``.

    Set explicitly: an earlier Kedro session in the same process may have set another URI.
    """
    mlflow.set_tracking_uri(tracking_uri)
    name = "belle-eval-tests"
    if mlflow.get_experiment_by_name(name) is None:
        mlflow.create_experiment(name, artifact_location=str(artifacts))
    mlflow.set_experiment(name)


def memorising_bloom(
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    seed: int = 0,
    max_steps: int = 300,
    target_loss: float = 0.002,
    learning_rate: float = 5e-2,
    tiny: TinyBloomSettings = TINY,
) -> Any:
    """A tiny BLOOM that has memorised each ``answer + EOS`` after its exact ``prompt`` text.

    Pass ``build_prompt(question)`` as the prompt to teach the templated behaviour, or a
    bare question to teach what the model says when a consumer forgets the template.
    """
    model = build_tiny_bloom(tokenizer, tiny, seed)
    encoded = [
        encode_example(tokenizer, prompt, answer, end_with_eos=True)
        for prompt, answer in pairs
    ]
    sequences = [ids for ids, _ in encoded]
    targets = [labels for _, labels in encoded]
    width = max(len(ids) for ids in sequences)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in sequences])
    labels = torch.tensor(
        [ids + [IGNORE_INDEX] * (width - len(ids)) for ids in targets]
    )
    attention = torch.tensor(
        [[1] * len(ids) + [0] * (width - len(ids)) for ids in sequences]
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    for _ in range(max_steps):
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        # Sharp enough that sampling (transformers pipelines sample by default) repeats it.
        if loss.item() < target_loss:
            break
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return model


def register_variants(
    tokenizer: Any,
    variant_sizes: Mapping[str, int],
    models: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Log and register one tiny BLOOM per variant (seeded by position) in the active store.

    Returns ``<variant>.model_version`` records exactly as train writes them.
    """
    records = {}
    with mlflow.start_run(run_name="register test variants"):
        for seed, (variant, size) in enumerate(variant_sizes.items()):
            model = (models or {}).get(variant) or build_tiny_bloom(
                tokenizer, TINY, seed
            )
            records[variant] = log_and_register(
                model,
                tokenizer,
                registered_model_name=REGISTERED_MODEL,
                source=TrainedFrom(
                    variant, int(size), f"test-{variant}", f"test-{variant}", "tiny"
                ),
                keep_adapter=False,
            )
    return records
