"""Typed settings of the train stage: the whole ``train`` block, built once per node.

Defaults live in ``conf/base/parameters_train.yml`` only. ``trainer`` is passed through
to ``transformers.TrainingArguments`` (which checks its own keys), so it stays a mapping.
The launcher's worker processes rebuild the same object from the run folder's
``job.json`` (:meth:`TrainSettings.as_dict` is what the folder stores).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from belle_kedro.common.config import InvalidSetting, Settings, setting

# Names of the weights' dtype (``train.model.dtype``); models.py maps them to torch's.
DType = Literal["float32", "fp32", "bfloat16", "bf16", "float16", "fp16"]
# TrainingArguments the run folder and launcher decide; ``train.trainer`` may not set them.
RESERVED_TRAINER_KEYS = (
    "output_dir",
    "report_to",
    "remove_unused_columns",
    "save_strategy",
    "seed",
    "use_cpu",
    "ddp_backend",
    "deepspeed",
)


@dataclass(frozen=True)
class TokenCacheSettings(Settings):
    """``train.token_cache``: records tokenised once, read by every rank."""

    root: str = setting("folder of the cache, shared by all ranks and nodes")
    batch_size: int = setting("records per batched tokenizer call")
    max_bytes: int | None = setting(
        "size cap: least recently used shards removed past it (null: none)"
    )
    max_age_days: float | None = setting(
        "shards unused for longer are removed (null: kept however old)"
    )

    def check(self) -> None:
        if self.batch_size < 1:
            raise InvalidSetting("batch_size", f"must be ≥ 1, got {self.batch_size}")
        if self.max_bytes is not None and self.max_bytes < 0:
            raise InvalidSetting(
                "max_bytes", f"must be ≥ 0 or null, got {self.max_bytes}"
            )
        if self.max_age_days is not None and self.max_age_days < 0:
            raise InvalidSetting(
                "max_age_days", f"must be ≥ 0 or null, got {self.max_age_days}"
            )


@dataclass(frozen=True)
class TinyBloomSettings(Settings):
    """``train.model.tiny_bloom``: the size of the random-init BLOOM."""

    n_layer: int = setting("transformer blocks")
    hidden_size: int = setting("width of the hidden states")
    n_head: int = setting("attention heads (must divide hidden_size)")

    def check(self) -> None:
        if self.hidden_size % self.n_head:
            raise InvalidSetting(
                "hidden_size",
                f"must be a multiple of n_head ({self.hidden_size} % {self.n_head})",
            )


@dataclass(frozen=True)
class ModelSettings(Settings):
    """``train.model``: which model and tokenizer to fine-tune."""

    source: Literal["tiny_bloom", "pretrained", "gguf"] = setting(
        "tiny_bloom (random init), pretrained (hub id / folder) or gguf (a GGUF file)"
    )
    name_or_path: str | None = setting(
        "pretrained: hub id or folder; gguf: file (null: SmolLM2)"
    )
    revision: str | None = setting("hub revision of a pretrained model")
    tokenizer: str | None = setting(
        "bytes, smollm2_gguf, a hub id / folder, or null (the model's own)"
    )
    tokenizer_cache_dir: str = setting("where converted offline tokenizers are kept")
    dtype: DType = setting("the weights' dtype when loaded")
    tiny_bloom: TinyBloomSettings = setting("size of the tiny_bloom model")

    def check(self) -> None:
        if self.source == "pretrained" and not self.name_or_path:
            raise InvalidSetting(
                "name_or_path", "must name a hub id or folder with source pretrained"
            )
        if self.source == "tiny_bloom" and self.tokenizer is None:
            raise InvalidSetting(
                "tokenizer",
                "must name a tokenizer for a tiny_bloom model (it has none of its "
                "own): bytes, smollm2_gguf or a hub id",
            )


@dataclass(frozen=True)
class LoraSettings(Settings):
    """``train.finetuning.lora``: the peft adapter (used with method lora only)."""

    r: int = setting("rank of the adapter")
    lora_alpha: int = setting("scaling numerator (alpha / r)")
    lora_dropout: float = setting("dropout on the adapter's input")
    target_modules: tuple[str, ...] = setting("module names to wrap")


@dataclass(frozen=True)
class FinetuningSettings(Settings):
    """``train.finetuning``: full fine-tuning or LoRA."""

    method: Literal["full", "lora"] = setting("full (every weight) or lora")
    lora: LoraSettings = setting("the adapter, with method lora")
    keep_adapter: bool = setting(
        "with lora: log only the adapter (its base must be a hub id)"
    )

    def check(self) -> None:
        if self.method != "lora":
            return  # the adapter's settings matter with lora only
        if self.lora.r < 1:
            raise InvalidSetting("lora.r", f"must be ≥ 1, got {self.lora.r}")
        if not 0.0 <= self.lora.lora_dropout < 1.0:
            raise InvalidSetting(
                "lora.lora_dropout", f"must be in [0, 1), got {self.lora.lora_dropout}"
            )
        if not self.lora.target_modules:
            raise InvalidSetting("lora.target_modules", "must name at least one module")


@dataclass(frozen=True)
class DataSettings(Settings):
    """``train.data``: sequence length and padding."""

    max_length: int = setting("tokens per example; longer ones are right-truncated")
    pad_to_multiple_of: int | None = setting("round padded lengths up to this")

    def check(self) -> None:
        if self.max_length < 1:
            raise InvalidSetting("max_length", f"must be ≥ 1, got {self.max_length}")
        if self.pad_to_multiple_of is not None and self.pad_to_multiple_of < 1:
            raise InvalidSetting(
                "pad_to_multiple_of", f"must be ≥ 1, got {self.pad_to_multiple_of}"
            )


@dataclass(frozen=True)
class EvalSettings(Settings):
    """``train.eval``: the held-out records behind the eval loss."""

    max_examples: int | None = setting("a seeded sample of this many (null: all)")


@dataclass(frozen=True)
class LauncherSettings(Settings):
    """``train.launcher``: how many processes train, started by which launcher."""

    command: Literal["torchrun", "deepspeed"] = setting("the launcher")
    nproc_per_node: int = setting("processes (GPUs) per node")
    nnodes: int = setting("nodes")
    node_rank: int = setting("this node's rank (Kedro runs on rank 0)")
    master_addr: str | None = setting("rendezvous host (needed with nnodes > 1)")
    master_port: int = setting("rendezvous port (multi-node torchrun, deepspeed)")
    hostfile: str | None = setting("DeepSpeed hostfile for several nodes")

    def check(self) -> None:
        for name in ("nproc_per_node", "nnodes"):
            if getattr(self, name) < 1:
                raise InvalidSetting(name, f"must be ≥ 1, got {getattr(self, name)}")
        if not 0 <= self.node_rank < self.nnodes:
            raise InvalidSetting(
                "node_rank",
                f"must be in [0, nnodes={self.nnodes}), got {self.node_rank}",
            )
        if self.nnodes > 1 and not self.master_addr:
            raise InvalidSetting(
                "master_addr",
                f"must name the rendezvous host when nnodes is {self.nnodes}",
            )


@dataclass(frozen=True)
class PlanSettings(Settings):
    """``train.plan``: the memory and disk plan logged before training."""

    on_short_disk: Literal["refuse", "warn"] = setting(
        "refuse to train (or only warn) when checkpoint_root has less free space "
        "than the plan needs"
    )


@dataclass(frozen=True)
class TrainSettings(Settings):
    """The ``train`` block: one variant's supervised fine-tuning."""

    registered_model_name: str = setting("every variant registers a version of it")
    seed: int = setting("seeds the model's init, the eval sample and the Trainer")
    checkpoint_root: str = setting("<root>/<variant>/<fingerprint>/ run folders")
    force: bool = setting("retrain (and re-register) finished variants")
    token_cache: TokenCacheSettings = setting("the token cache")
    model: ModelSettings = setting("model and tokenizer")
    finetuning: FinetuningSettings = setting("full or LoRA")
    data: DataSettings = setting("sequence length and padding")
    eval: EvalSettings = setting("held-out records for the eval loss")
    deepspeed: str | None = setting("path to a DeepSpeed JSON (null: none)")
    launcher: LauncherSettings = setting("processes and launcher")
    plan: PlanSettings = setting("the memory and disk plan")
    trainer: dict[str, Any] = setting(
        "transformers.TrainingArguments, passed through as is"
    )

    def check(self) -> None:
        for key in RESERVED_TRAINER_KEYS:
            if key in self.trainer:
                raise InvalidSetting(
                    f"trainer.{key}",
                    "is set by the train stage itself"
                    + (" (use train.deepspeed)" if key == "deepspeed" else ""),
                )
        if (
            self.finetuning.method == "lora"
            and self.finetuning.keep_adapter
            and self.model.source != "pretrained"
        ):
            raise InvalidSetting(
                "finetuning.keep_adapter",
                f"needs a pretrained (hub id) base; a {self.model.source} base has "
                "none to rebuild it from, so set it to false (the adapter is merged)",
            )

    @property
    def needs_launcher(self) -> bool:
        """Whether training runs in launcher subprocesses rather than in-process."""
        return (
            self.launcher.nproc_per_node > 1
            or self.launcher.nnodes > 1
            or bool(self.deepspeed)
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (lists for tuples), as the block was written."""
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
