"""Descriptions on the registered model and each of its versions, from the run's records.

The MLflow UI shows them on the model's page and each version's page: base model,
recipe, data size and digest, the macro score with its interval once evaluated, and
the champion rule on the champion's version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from belle_kedro.common.template import build_prompt
from belle_kedro.pipelines.train.settings import TrainSettings


def base_model(train: TrainSettings) -> str:
    """The base model in words (hub id, file, or the tiny smoke model)."""
    if train.model.source == "tiny_bloom":
        return "tiny BLOOM (random init from BloomConfig; smoke test only)"
    return str(train.model.name_or_path or train.model.source)


def recipe(train: TrainSettings) -> str:
    """Method, epochs, learning rate and DeepSpeed in one line."""
    trainer = train.trainer
    return (
        f"{train.finetuning.method} fine-tuning, {trainer.get('num_train_epochs')} "
        f"epochs, lr {trainer.get('learning_rate')}, DeepSpeed "
        f"{train.deepspeed or 'off'}"
    )


def version_description(
    version: Mapping[str, Any],
    macro: Mapping[str, Any] | None,
    champion: Mapping[str, Any],
    train: TrainSettings,
) -> str:
    """One version's description (markdown, shown on its page)."""
    lines = [
        f"Variant **{version['variant']}** of {base_model(train)}.",
        "",
        f"- Recipe: {recipe(train)}.",
        f"- Training data: {version['train_size']} records, digest `{version['data_digest']}`.",
    ]
    if macro is not None and not math.isnan(float(macro["macro"])):
        lines.append(
            f"- Macro score {float(macro['macro']):.4f} "
            f"[{float(macro['macro_ci_low']):.4f}, {float(macro['macro_ci_high']):.4f}]."
        )
    if champion.get("variant") == version["variant"]:
        lines.append(
            f"- Champion (alias `{champion.get('alias')}`): {champion['rule_description']}."
        )
    return "\n".join(lines)


def model_description(
    versions: Mapping[str, Mapping[str, Any]],
    champion: Mapping[str, Any],
    train: TrainSettings,
) -> str:
    """The registered model's description: what it is and which version is champion."""
    sizes = ", ".join(f"{name} ({v['train_size']})" for name, v in versions.items())
    template = build_prompt("{instruction}", "{input}").replace("\n", "\\n")
    return "\n".join(
        [
            f"BELLE-style supervised fine-tunes of {base_model(train)} on nested "
            "sample-size variants of the belle-kedro Chinese instruction data.",
            "",
            f"- Recipe: {recipe(train)}.",
            f"- Variants (records): {sizes}.",
            f"- Champion: version {champion.get('version')} ({champion.get('variant')}), "
            f"{champion.get('rule_description')}.",
            f"- Prompt: `{template}` (serving applies it).",
        ]
    )


def describe_registry(
    versions: Mapping[str, Mapping[str, Any]],
    eval_macro: pd.DataFrame,
    champion: Mapping[str, Any],
    train: TrainSettings,
) -> dict[str, Any]:
    """Set the descriptions in the registry; returns what was set, for the catalog."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    macro_rows = {
        str(row["variant"]): {str(key): value for key, value in row.items()}
        for row in eval_macro.to_dict("records")
    }
    names = {str(version["registered_model_name"]) for version in versions.values()}
    written: dict[str, Any] = {"models": {}, "versions": {}}
    for name in sorted(names):
        text = model_description(versions, champion, train)
        client.update_registered_model(name, description=text)
        written["models"][name] = text
    for variant, version in versions.items():
        text = version_description(version, macro_rows.get(variant), champion, train)
        client.update_model_version(
            str(version["registered_model_name"]),
            str(version["version"]),
            description=text,
        )
        written["versions"][
            f"{version['registered_model_name']}/{version['version']}"
        ] = text
    return written
