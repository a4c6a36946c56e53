"""Log a fine-tuned model to MLflow, register it, and load it back.

The model is logged with the transformers flavour (task ``text-generation``) and
``prompt_template = build_prompt("{prompt}")``, so MLflow serving (pyfunc) wraps a bare
question in exactly the template the model was trained on. The native
``mlflow.transformers.load_model`` pipeline does not apply it: callers that use it (the
evaluate pipeline does) pass prompts from
:func:`belle_kedro.common.template.build_prompt`.

A LoRA model on a hub base (``bigscience/bloomz-7b1-mt``) is logged as its adapter
only; MLflow records the base model's hub id and fetches it when loading. A LoRA model
on a local base (tiny BLOOM, a GGUF) has no hub id to point at, so its adapter is merged
into the weights first and the full model is logged.
"""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Any

import mlflow
from transformers import PreTrainedTokenizerBase

from belle_kedro.common.template import build_prompt
from belle_kedro.pipelines.train.settings import TrainSettings
from belle_kedro.pipelines.train.trainer import load_trained

logger = logging.getLogger(__name__)

MODEL_ARTIFACT_NAME = "model"
PROMPT_TEMPLATE = build_prompt("{prompt}")
# What serving this model needs; explicit so MLflow never guesses from the environment.
_RUNTIME_PACKAGES = ("torch", "transformers", "accelerate", "tokenizers", "safetensors")
SERVING_GENERATION_CONFIG = {"do_sample": False, "max_new_tokens": 128}


def pip_requirements(with_peft: bool = False) -> list[str]:
    """Pinned requirements of the logged model (the versions it was trained with)."""
    packages = [*_RUNTIME_PACKAGES, "peft"] if with_peft else list(_RUNTIME_PACKAGES)
    pins = []
    for package in packages:
        version = importlib.metadata.version(package).split("+")[0]
        pins.append(f"{package}=={version}")
    return pins


def _is_peft(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


# Registry tag naming the training run folder's fingerprint (data + config) of a version.
FINGERPRINT_TAG = "run_fingerprint"


def _version_record(
    version: Any,
    registered_model_name: str,
    variant: str,
    train_size: int,
    data_digest: str,
) -> dict[str, Any]:
    return {
        "registered_model_name": registered_model_name,
        "version": str(version.version),
        "model_uri": f"models:/{registered_model_name}/{version.version}",
        "variant": variant,
        "train_size": int(train_size),
        "data_digest": data_digest,
        "run_id": str(version.run_id),
    }


def find_registered(
    registered_model_name: str,
    *,
    variant: str,
    train_size: int,
    data_digest: str,
    fingerprint: str,
) -> dict[str, Any] | None:
    """The newest version already registered from the run folder ``fingerprint``, if any."""
    from mlflow.tracking import MlflowClient

    versions = MlflowClient().search_model_versions(
        f"name = '{registered_model_name}' and tags.{FINGERPRINT_TAG} = '{fingerprint}'"
    )
    if not versions:
        return None
    newest = max(versions, key=lambda version: int(version.version))
    return _version_record(
        newest, registered_model_name, variant, train_size, data_digest
    )


def log_and_register(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    *,
    registered_model_name: str,
    variant: str,
    train_size: int,
    data_digest: str,
    keep_adapter: bool,
    fingerprint: str,
) -> dict[str, Any]:
    """Log the model to the active MLflow run and register it as a new version.

    ``keep_adapter`` logs a peft model as its adapter (its base must be a hub id);
    otherwise LoRA weights are merged in first. ``fingerprint`` (the training run
    folder's) is tagged on the version so a rerun finds and reuses it. Returns the
    ``<variant>.model_version`` record that evaluate reads.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError(
            "log_and_register needs an active MLflow run (the variant's child run)"
        )
    with_peft = _is_peft(model)
    if with_peft and not keep_adapter:
        model = model.merge_and_unload()
        with_peft = False
    model_info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        name=MODEL_ARTIFACT_NAME,
        task="text-generation",
        prompt_template=PROMPT_TEMPLATE,
        # Served answers are greedy (BELLE evaluated at temperature 0.001) and bounded,
        # rather than transformers' sampling defaults.
        model_config=SERVING_GENERATION_CONFIG,
        pip_requirements=pip_requirements(with_peft=with_peft),
        metadata={
            "variant": variant,
            "train_size": int(train_size),
            "data_digest": data_digest,
        },
    )
    tags = {
        "variant": variant,
        "train_size": str(int(train_size)),
        "data_digest": data_digest,
        FINGERPRINT_TAG: fingerprint,
    }
    version = mlflow.register_model(
        model_info.model_uri, registered_model_name, tags=tags
    )
    logger.info(
        "Registered %s version %s (variant %s)",
        registered_model_name,
        version.version,
        variant,
    )
    return _version_record(
        version, registered_model_name, variant, train_size, data_digest
    )


def register_trained(
    run_dir: Path,
    settings: TrainSettings,
    *,
    variant: str,
    train_size: int,
    data_digest: str,
) -> dict[str, Any]:
    """Register the model trained in ``run_dir``, or reuse the version it already has.

    A version registered from the same run folder (same data and config) is returned
    as it is, unless ``train.force`` is set; otherwise ``model/`` is loaded, logged to
    the active run and registered as a new version of ``registered_model_name``.
    """
    name = settings.registered_model_name
    if not settings.force:
        existing = find_registered(
            name,
            variant=variant,
            train_size=train_size,
            data_digest=data_digest,
            fingerprint=run_dir.name,
        )
        if existing is not None:
            logger.info("%s: reusing %s", variant, existing["model_uri"])
            return existing
    model, tokenizer = load_trained(run_dir, settings)
    return log_and_register(
        model,
        tokenizer,
        registered_model_name=name,
        variant=variant,
        train_size=train_size,
        data_digest=data_digest,
        keep_adapter=settings.finetuning.keep_adapter,
        fingerprint=run_dir.name,
    )
