"""Model folders exported from the MLflow registry, each with its model card.

A folder holds what ``transformers`` (or ``peft``) loads: ``config.json``,
``model.safetensors`` (sharded above ``release.model.max_shard_size``), the tokenizer
files and ``generation_config.json`` carrying the evaluation's decoding settings; a
LoRA version logged as its adapter gives ``adapter_config.json`` and
``adapter_model.safetensors`` instead, ``base_model`` set. A LoRA version merged at
registration (a local base) gives the merged model and, in ``adapter/``, the adapter
that was logged beside it. The weights come from the registered version
(``models:/<name>/<version>``), never from the training folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from belle_kedro.common.template import CHAT_TEMPLATE, build_prompt
from belle_kedro.pipelines.evaluate.answering import GREEDY_BELOW_TEMPERATURE
from belle_kedro.pipelines.evaluate.settings import EvaluateSettings
from belle_kedro.pipelines.release.dataset_folder import limitations, reproduce_lines
from belle_kedro.pipelines.release.settings import ReleaseSettings
from belle_kedro.pipelines.train.model_registry import ADAPTER_TAG
from belle_kedro.pipelines.train.settings import TrainSettings

# The merged LoRA version's adapter, inside its model folder.
ADAPTER_FOLDER = "adapter"


class ReleaseError(ValueError):
    """A release that cannot be made as asked; the message says what to change."""


def released_variants(
    choice: str | Sequence[str],
    versions: Mapping[str, Mapping[str, Any]],
    champion: Mapping[str, Any],
) -> list[str]:
    """The variants given a model folder: ``champion``, ``all`` or a list of names."""
    if choice == "champion":
        names = [str(champion["variant"])]
    elif choice == "all":
        names = list(versions)
    else:
        names = list(choice)
    untrained = [name for name in names if name not in versions]
    if untrained:
        raise ReleaseError(
            f"release.variants names {', '.join(untrained)}, which this run did not "
            f"train (trained: {', '.join(versions) or 'none'})"
        )
    return names


def load_registered(model_uri: str, variant: str) -> dict[str, Any]:
    """The registered version's model and tokenizer; a clear error when it is gone."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        components: dict[str, Any] = mlflow.transformers.load_model(
            model_uri, return_type="components"
        )
    except (MlflowException, OSError) as error:
        raise ReleaseError(
            f"{variant}.model_version names {model_uri}, which the MLflow registry "
            f"cannot give ({str(error).splitlines()[0]}); rerun the train pipeline "
            "for this variant (train.force: true) to register it again"
        ) from None
    return components


def registered_adapter(version: Mapping[str, Any]) -> Path | None:
    """The adapter logged beside a merged LoRA version (its ``adapter`` tag), downloaded;
    None for a version without one."""
    import mlflow
    from mlflow.tracking import MlflowClient

    tags = (
        MlflowClient()
        .get_model_version(
            str(version["registered_model_name"]), str(version["version"])
        )
        .tags
    )
    if ADAPTER_TAG not in tags:
        return None
    return Path(
        mlflow.artifacts.download_artifacts(
            f"{version['model_uri']}/{tags[ADAPTER_TAG]}"
        )
    )


def adapter_base(adapter: Path | None) -> str | None:
    """The base model an adapter folder names (``base_model_name_or_path``)."""
    if adapter is None:
        return None
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    return str(config["base_model_name_or_path"])


def generation_config(model: Any, evaluate: EvaluateSettings) -> Any:
    """The model's generation config with the evaluation's decoding settings."""
    from transformers import GenerationConfig

    decoding = evaluate.generation
    config = GenerationConfig.from_dict(model.generation_config.to_dict())
    config.max_new_tokens = decoding.max_new_tokens
    if decoding.temperature > GREEDY_BELOW_TEMPERATURE:
        config.do_sample = True
        config.temperature = decoding.temperature
        config.top_p = decoding.top_p
    else:
        config.do_sample = False
    return config


def folder_writer(
    components: Mapping[str, Any],
    evaluate: EvaluateSettings,
    max_shard_size: str,
    adapter: Path | None,
) -> Callable[[Path], None]:
    """Writes the model (or adapter), tokenizer (with our chat template) and generation
    config into a folder, and a merged version's ``adapter`` into ``adapter/``."""

    def write(folder: Path) -> None:
        if adapter is not None:
            shutil.copytree(adapter, folder / ADAPTER_FOLDER)
        model = components["model"]
        model.save_pretrained(folder, max_shard_size=max_shard_size)
        tokenizer = components["tokenizer"]
        # The template the model was trained on, for apply_chat_template and TRL.
        tokenizer.chat_template = CHAT_TEMPLATE
        tokenizer.save_pretrained(folder)
        generation_config(model, evaluate).save_pretrained(folder)

    return write


@dataclass(frozen=True)
class ModelFacts:
    """What one model card states, each from a catalog dataset of the run."""

    variant: str
    version: Mapping[str, Any]  # the <variant>.model_version record
    is_adapter: bool
    table: pd.DataFrame  # eval_table rows of this variant
    macro: Mapping[str, Any]  # eval_macro row of this variant
    champion: Mapping[str, Any]
    dataset_repo: str | None
    adapter_base: str | None  # a merged LoRA version's adapter/ base; None: no adapter/
    run_command: Mapping[str, Any]  # RunCommandHook's record: command, commit, dirty


def _recipe_lines(train: TrainSettings) -> list[str]:
    trainer = train.trainer
    launcher = train.launcher
    per_device = int(trainer.get("per_device_train_batch_size", 1))
    accumulation = int(trainer.get("gradient_accumulation_steps", 1))
    processes = launcher.nproc_per_node * launcher.nnodes
    precision = "bf16 mixed precision" if trainer.get("bf16") else train.model.dtype
    method: str = train.finetuning.method
    if method == "lora":
        lora = train.finetuning.lora
        method = f"LoRA (r {lora.r}, alpha {lora.lora_alpha}, modules {', '.join(lora.target_modules)})"
    return [
        "## Training recipe",
        "",
        "| setting | value |",
        "|---|---|",
        f"| method | {method} |",
        f"| epochs | {trainer.get('num_train_epochs')} |",
        f"| learning rate | {trainer.get('learning_rate')} ({trainer.get('lr_scheduler_type')}) |",
        f"| global batch | {per_device * accumulation * processes} "
        f"({per_device} per device x {accumulation} accumulation x {processes} processes) |",
        f"| precision | {precision} |",
        f"| DeepSpeed | {train.deepspeed or 'off'} |",
        f"| max length | {train.data.max_length} tokens |",
        "",
    ]


def _eval_lines(facts: ModelFacts, evaluate: EvaluateSettings) -> list[str]:
    judge = evaluate.judge
    if judge.enabled:
        protocol = (
            f"an LLM judge (`{judge.backend.model or judge.backend.backend}`, "
            f"template `{judge.template}`, {judge.samples} sample(s) per answer)"
        )
    else:
        protocol = (
            f"the offline score `{evaluate.scoring.offline_score}` against the "
            "standard answers (judge off)"
        )
    confidence = round(evaluate.report.confidence * 100)
    lines = [
        "## Evaluation",
        "",
        f"Scored by {protocol}; {confidence}% bootstrap confidence intervals "
        f"({evaluate.report.bootstrap_resamples} resamples).",
        "",
        f"| class | answers | mean | {confidence}% CI |",
        "|---|---|---|---|",
    ]
    for row in facts.table.to_dict("records"):
        if not row["count"]:
            lines.append(f"| {row['class']} | 0 | – | – |")
            continue
        lines.append(
            f"| {row['class']} | {row['count']} | {row['mean']:.4f} | "
            f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}] |"
        )
    macro = facts.macro
    lines += [
        f"| **macro** | | {macro['macro']:.4f} | "
        f"[{macro['macro_ci_low']:.4f}, {macro['macro_ci_high']:.4f}] |",
        "",
    ]
    if facts.champion.get("variant") == facts.variant:
        lines += [
            f"This version is the champion (alias `{facts.champion.get('alias')}`): "
            f"{facts.champion['rule_description']}.",
            "",
        ]
    return lines


def _usage_lines(facts: ModelFacts) -> list[str]:
    template = build_prompt("{instruction}", "{input}").replace("\n", "\\n")
    load = "PeftModel" if facts.is_adapter else "AutoModelForCausalLM"
    return [
        "## Prompt format and use",
        "",
        f'The model was trained on `"{template}"` (the input line is left out when '
        "there is none); its answer ends with the tokenizer's EOS token.",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer"
        if not facts.is_adapter
        else "from peft import AutoPeftModelForCausalLM as AutoModelForCausalLM; from transformers import AutoTokenizer",
        'model, tok = AutoModelForCausalLM.from_pretrained("path/or/repo"), AutoTokenizer.from_pretrained("path/or/repo")',
        f"prompt = {build_prompt('请用一句话介绍长城。')!r}",
        "ids = tok(prompt, return_tensors='pt', add_special_tokens=False).input_ids",
        "print(tok.decode(model.generate(ids)[0, ids.shape[1]:], skip_special_tokens=True))",
        "```",
        "",
        f"(`{load}` loads this folder; `generation_config.json` carries the evaluation's decoding settings.)",
        "",
        *_adapter_lines(facts),
    ]


def _adapter_lines(facts: ModelFacts) -> list[str]:
    if facts.adapter_base is None:
        return []
    return [
        f"`{ADAPTER_FOLDER}/` holds the LoRA adapter these weights merge "
        f"(`adapter_config.json`, `adapter_model.safetensors`), on the base "
        f"`{facts.adapter_base}`: "
        f'`PeftModel.from_pretrained(base, "path/or/repo/{ADAPTER_FOLDER}")`.',
        "",
    ]


def model_card(
    facts: ModelFacts,
    train: TrainSettings,
    evaluate: EvaluateSettings,
    settings: ReleaseSettings,
) -> str:
    """The model card: YAML header, recipe, data, evaluation, prompt and limits."""
    version = facts.version
    header: dict[str, Any] = {
        "license": settings.model.license,
        "language": list(settings.model.language),
        "pipeline_tag": "text-generation",
        "library_name": "peft" if facts.is_adapter else "transformers",
        "tags": ["belle-kedro", "instruction-tuning", "sft"],
    }
    if train.model.source == "pretrained" and train.model.name_or_path:
        header["base_model"] = train.model.name_or_path
    if facts.dataset_repo:
        header["datasets"] = [facts.dataset_repo]
    base = train.model.name_or_path or f"a {train.model.source} model"
    if train.model.source == "tiny_bloom":
        tiny = train.model.tiny_bloom
        base = (
            f"a tiny BLOOM built from its config (random init, {tiny.n_layer} layers, "
            f"hidden size {tiny.hidden_size}; a smoke-test model, not a useful one)"
        )
    body = [
        f"# {version['registered_model_name']} · {facts.variant}",
        "",
        f"Supervised fine-tune of {base}, on the `{facts.variant}` config of the "
        "belle-kedro dataset (Chinese self-instruct records).",
        "",
        f"Registry: `{version['model_uri']}` (MLflow run `{version['run_id']}`).",
        "",
        "## Training data",
        "",
        f"{version['train_size']} records; digest `{version['data_digest']}` "
        "(SHA-256 of instruction/input/output, as in the dataset card).",
        "",
        *_recipe_lines(train),
        *_eval_lines(facts, evaluate),
        *_usage_lines(facts),
        *reproduce_lines(facts.run_command),
        limitations(model=True),
    ]
    front = yaml.safe_dump(header, allow_unicode=True, sort_keys=False)
    return f"---\n{front}---\n\n" + "\n".join(body)
