"""Log a fine-tuned model to MLflow, register it, and load it back.

The model is logged with the transformers flavour (task ``text-generation``) and
``prompt_template = build_prompt("{prompt}")``, so MLflow serving (pyfunc) wraps a bare
question in exactly the template the model was trained on; its signature (a string in,
a string out, the decoding settings as parameters) and input example (a bare question,
the text the template wraps) say so in the registry. The native
``mlflow.transformers.load_model`` pipeline does not apply it: callers that use it (the
evaluate pipeline does) pass prompts from
:func:`belle_kedro.common.template.build_prompt`.

A LoRA model on a hub base (``bigscience/bloomz-7b1-mt``) is logged as its adapter
only; MLflow records the base model's hub id and fetches it when loading. A LoRA model
on a local base (tiny BLOOM, a GGUF) has no hub id to point at, so its adapter is merged
into the weights first and the full model is logged; the adapter itself
(``adapter_config.json``, ``adapter_model.safetensors``, ``base_model_name_or_path`` set)
is logged beside it, in the same logged model's ``adapter/`` folder, so a release can
hand it out too (the version's ``adapter`` tag names that folder).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import tempfile
from dataclasses import dataclass
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
# The registry's input example: what a caller sends (the prompt template wraps it).
INPUT_EXAMPLE = "请用一句话介绍长城。"
# Registry tag and logged-model folder of a merged LoRA version's own adapter.
ADAPTER_TAG = "adapter"
ADAPTER_ARTIFACT = "adapter"


def serving_signature() -> Any:
    """A string in, the generated string out; the decoding settings as call parameters."""
    from mlflow.models import infer_signature

    return infer_signature(
        model_input=INPUT_EXAMPLE,
        model_output="长城是中国古代修建的军事防御工程。",
        params=dict(SERVING_GENERATION_CONFIG),
    )


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


@dataclass(frozen=True)
class TrainedFrom:
    """What a registered version was trained from: variant, its data, the run folder."""

    variant: str
    train_size: int
    data_digest: str
    fingerprint: str  # the training run folder's name (a hash of data + config)
    base_model: str  # the base's hub id or file, or the tiny model's config (models.base_model_id)

    @property
    def tags(self) -> dict[str, str]:
        """Registry tags of the version; the fingerprint lets a rerun find it."""
        return {
            "variant": self.variant,
            "train_size": str(self.train_size),
            "data_digest": self.data_digest,
            "base_model": self.base_model,
            FINGERPRINT_TAG: self.fingerprint,
        }

    def record(self, version: Any, registered_model_name: str) -> dict[str, Any]:
        """The ``<variant>.model_version`` record that evaluate reads."""
        return {
            "registered_model_name": registered_model_name,
            "version": str(version.version),
            "model_uri": f"models:/{registered_model_name}/{version.version}",
            "variant": self.variant,
            "train_size": self.train_size,
            "data_digest": self.data_digest,
            "run_id": str(version.run_id),
        }


def find_registered(
    registered_model_name: str, source: TrainedFrom
) -> dict[str, Any] | None:
    """The newest version already registered from the run folder ``source`` names, if any."""
    from mlflow.tracking import MlflowClient

    versions = MlflowClient().search_model_versions(
        f"name = '{registered_model_name}' "
        f"and tags.{FINGERPRINT_TAG} = '{source.fingerprint}'"
    )
    if not versions:
        return None
    newest = max(versions, key=lambda version: int(version.version))
    return source.record(newest, registered_model_name)


def _save_adapter(model: Any, base_model: str) -> tempfile.TemporaryDirectory[str]:
    """The peft adapter of ``model`` saved in a temporary folder, its base named."""
    folder = tempfile.TemporaryDirectory(prefix="belle-adapter-")
    model.save_pretrained(folder.name)
    # Named after saving: peft looks a named base up while saving, and a tiny BLOOM's
    # config string is no folder or hub id.
    config_file = Path(folder.name) / "adapter_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def log_and_register(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    *,
    registered_model_name: str,
    source: TrainedFrom,
    keep_adapter: bool,
) -> dict[str, Any]:
    """Log the model to the active MLflow run and register it as a new version.

    ``keep_adapter`` logs a peft model as its adapter (its base must be a hub id);
    otherwise LoRA weights are merged in first and the adapter is logged beside them. ``source`` is tagged on the version
    (its run folder's fingerprint too, so a rerun finds and reuses it). Returns the
    ``<variant>.model_version`` record that evaluate reads.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError(
            "log_and_register needs an active MLflow run (the variant's child run)"
        )
    with_peft = _is_peft(model)
    adapter: tempfile.TemporaryDirectory[str] | None = None
    if with_peft and not keep_adapter:
        adapter = _save_adapter(model, source.base_model)
        model = model.merge_and_unload()
        with_peft = False
    model_info = mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        name=MODEL_ARTIFACT_NAME,
        task="text-generation",
        prompt_template=PROMPT_TEMPLATE,
        # Served answers are greedy (BELLE evaluated at temperature 0.001) and bounded,
        # rather than transformers' sampling defaults.
        # A copy: MLflow adds return_full_text to the dict it is given, which would
        # change every later version's signature in the same process.
        model_config=dict(SERVING_GENERATION_CONFIG),
        pip_requirements=pip_requirements(with_peft=with_peft),
        metadata={
            "variant": source.variant,
            "train_size": source.train_size,
            "data_digest": source.data_digest,
        },
        signature=serving_signature(),
        # MLflow serves this example once while logging (pyfunc loads a second copy of
        # an in-memory model to answer it): a version that cannot answer never registers.
        input_example=INPUT_EXAMPLE,
    )
    tags = source.tags
    if adapter is not None:
        with adapter:
            mlflow.MlflowClient().log_model_artifacts(
                model_info.model_id, adapter.name, ADAPTER_ARTIFACT
            )
        tags = {**tags, ADAPTER_TAG: ADAPTER_ARTIFACT}
    version = mlflow.register_model(
        model_info.model_uri, registered_model_name, tags=tags
    )
    logger.info(
        "Registered %s version %s (variant %s)",
        registered_model_name,
        version.version,
        source.variant,
    )
    return source.record(version, registered_model_name)


def register_trained(
    run_dir: Path, settings: TrainSettings, source: TrainedFrom
) -> dict[str, Any]:
    """Register the model trained in ``run_dir``, or reuse the version it already has.

    A version registered from the same run folder (same data and config) is returned
    as it is, unless ``train.force`` is set; otherwise ``model/`` is loaded, logged to
    the active run and registered as a new version of ``registered_model_name``.
    """
    name = settings.registered_model_name
    if not settings.force:
        existing = find_registered(name, source)
        if existing is not None:
            logger.info("%s: reusing %s", source.variant, existing["model_uri"])
            return existing
    model, tokenizer = load_trained(run_dir, settings)
    return log_and_register(
        model,
        tokenizer,
        registered_model_name=name,
        source=source,
        keep_adapter=settings.finetuning.keep_adapter,
    )
