"""The memory and disk a training run will need, estimated before it starts.

From the model's config (its parameters counted on the ``meta`` device: no weights are
loaded), the fine-tuning method, the DeepSpeed config and the process count. Bytes per
parameter, for mixed-precision AdamW (``trainer.bf16`` with a bf16 model):

- GPU, per rank: bf16 weights (2) and gradients (2), plus the fp32 master weights and
  Adam's two moments (12) under DeepSpeed. ZeRO-1 splits the 12 across the ranks, ZeRO-2
  the gradients too, ZeRO-3 everything; ``offload_optimizer`` moves the 12 to host RAM,
  ``offload_param`` the weights. Without DeepSpeed, torch's AdamW keeps its moments in
  the weights' dtype: 4 x that dtype's bytes, on every rank. Activations come on top
  (activation checkpointing keeps them small at BELLE's 2 x 1,024 tokens).
- Host RAM, per node: each rank loads the whole model through host RAM once, unless
  ZeRO-3 builds it partitioned (:func:`~.models.load_model`), plus what is offloaded.
- A checkpoint: the model's safetensors (weights' dtype), DeepSpeed's own copy of the
  bf16 weights (2) and the optimizer (12): 16 bytes/param for a bf16 model under
  DeepSpeed, 113 GB for BLOOMZ-7B1-mt. LoRA's checkpoints hold the adapter only.
- Disk in ``checkpoint_root``: ``save_total_limit + 1`` checkpoints (the Trainer writes
  the next before it deletes the oldest) and the final model.

:func:`disk_shortfall` compares the total with the free space of the checkpoint folder.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, BloomConfig, PretrainedConfig

from belle_kedro.pipelines.train.models import gguf_file, load_tokenizer
from belle_kedro.pipelines.train.settings import TrainSettings
from belle_kedro.pipelines.train.trainer import CHECKPOINT_DIR

logger = logging.getLogger(__name__)

GB = 1e9
# Mixed-precision AdamW under DeepSpeed (module docstring): fp32 master + 2 moments.
OPTIMIZER_BYTES = 12
HALF_BYTES = 2  # bf16 weights and gradients under DeepSpeed's bf16
_DTYPE_BYTES = {
    "float32": 4,
    "fp32": 4,
    "bfloat16": 2,
    "bf16": 2,
    "float16": 2,
    "fp16": 2,
}


@dataclass(frozen=True)
class ModelSize:
    """Parameters of the model to train, and how many of them train."""

    parameters: int
    trainable: int
    weight_bytes: int  # per parameter, in the dtype the model is loaded in


@dataclass(frozen=True)
class ZeroStage:
    """What the DeepSpeed config partitions and offloads (stage 0: no DeepSpeed)."""

    stage: int
    offload_optimizer: bool
    offload_param: bool

    @classmethod
    def of(cls, deepspeed: str | None) -> ZeroStage:
        """Read from the DeepSpeed JSON ``train.deepspeed`` names."""
        if not deepspeed:
            return cls(0, False, False)
        config = json.loads(Path(deepspeed).read_text(encoding="utf-8"))
        zero = config.get("zero_optimization", {})

        def offloaded(key: str) -> bool:
            return zero.get(key, {}).get("device", "none") in ("cpu", "nvme")

        return cls(
            int(zero.get("stage", 0)),
            offloaded("offload_optimizer"),
            offloaded("offload_param"),
        )


@dataclass(frozen=True)
class ResourcePlan:
    """Estimated bytes: GPU per rank, host RAM per node, one checkpoint, total disk."""

    model: ModelSize
    zero: ZeroStage
    ranks_per_node: int
    nodes: int
    save_total_limit: int | None
    gpu_per_rank: float
    host_per_node: float
    checkpoint: float
    final_model: float  # model/: the weights, or LoRA's adapter only
    registered: float  # what registration logs: model/, or the merged model
    disk: float

    def lines(self) -> list[str]:
        """The plan as log lines, in GB."""
        ranks = self.ranks_per_node * self.nodes
        stage = f"ZeRO-{self.zero.stage}" if self.zero.stage else "no DeepSpeed"
        offload = [
            name
            for name, on in (
                ("optimizer", self.zero.offload_optimizer),
                ("parameters", self.zero.offload_param),
            )
            if on
        ]
        kept = (
            "unlimited (counted as 1)"
            if self.save_total_limit is None
            else self.save_total_limit
        )
        return [
            f"model: {self.model.parameters:,} parameters "
            f"({self.model.trainable:,} trainable), {stage}"
            + (f", offloading {' and '.join(offload)}" if offload else "")
            + f", {ranks} rank(s) on {self.nodes} node(s)",
            f"GPU memory per rank: ~{self.gpu_per_rank / GB:.1f} GB for weights, "
            "gradients and optimizer, before activations",
            f"host RAM per node: ~{self.host_per_node / GB:.1f} GB at the peak "
            "(model load and offloaded state)",
            f"one checkpoint: ~{self.checkpoint / GB:.1f} GB; disk in checkpoint_root: "
            f"~{self.disk / GB:.1f} GB (save_total_limit {kept} + 1 being written, "
            f"and the final model, {self.final_model / GB:.1f} GB)",
            f"afterwards, per variant: registration reads the trained model into host "
            f"RAM and writes ~{self.registered / GB:.1f} GB twice, to "
            "a temporary folder and into the MLflow artifact store; evaluation loads "
            "it from there through host RAM before placing it on the GPU",
        ]


def model_config(settings: TrainSettings) -> PretrainedConfig:
    """The config of the model ``train.model`` names (config files only, no weights)."""
    model = settings.model
    if model.source == "tiny_bloom":
        tiny = model.tiny_bloom
        return BloomConfig(
            vocab_size=len(load_tokenizer(model)),
            hidden_size=tiny.hidden_size,
            n_layer=tiny.n_layer,
            n_head=tiny.n_head,
        )
    if model.source == "gguf":
        gguf = gguf_file(model)
        return AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    assert model.name_or_path, "ModelSettings.check requires it for pretrained"
    return AutoConfig.from_pretrained(model.name_or_path, revision=model.revision)


def model_size(config: PretrainedConfig, settings: TrainSettings) -> ModelSize:
    """Parameters counted on the ``meta`` device (tied weights once), and LoRA's share."""
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    trainable = parameters
    finetuning = settings.finetuning
    if finetuning.method == "lora":
        targets = tuple(finetuning.lora.target_modules)
        trainable = sum(
            finetuning.lora.r * (module.in_features + module.out_features)
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in targets
        )
    return ModelSize(parameters, trainable, _DTYPE_BYTES[settings.model.dtype])


def plan(size: ModelSize, settings: TrainSettings) -> ResourcePlan:
    """The estimates of the module docstring for ``size`` trained as ``settings`` say."""
    zero = ZeroStage.of(settings.deepspeed)
    launcher = settings.launcher
    ranks = launcher.nproc_per_node * launcher.nnodes
    weights = size.weight_bytes * size.parameters
    frozen = size.parameters - size.trainable
    if zero.stage == 0:  # torch AdamW: moments in the weights' dtype, nothing split
        gpu = float(size.weight_bytes * (size.parameters + 3 * size.trainable))
        host_state = 0.0
        optimizer_on_disk = float(2 * size.weight_bytes * size.trainable)
        module_copy = 0.0
    else:
        shares = {  # bytes/param of (weights, gradients, optimizer) split across ranks
            1: (1, 1, ranks),
            2: (1, ranks, ranks),
            3: (ranks, ranks, ranks),
        }[min(zero.stage, 3)]
        trained_weights = HALF_BYTES * size.trainable / shares[0]
        grads = HALF_BYTES * size.trainable / shares[1]
        optimizer = OPTIMIZER_BYTES * size.trainable / shares[2]
        frozen_weights = size.weight_bytes * frozen / shares[0]
        on_host = (optimizer if zero.offload_optimizer else 0.0) + (
            trained_weights + frozen_weights if zero.offload_param else 0.0
        )
        gpu = trained_weights + grads + optimizer + frozen_weights - on_host
        host_state = on_host * launcher.nproc_per_node
        optimizer_on_disk = float(OPTIMIZER_BYTES * size.trainable)
        module_copy = HALF_BYTES * size.trainable
    # Loading: the whole model per rank, or (ZeRO-3) built already partitioned.
    load = weights if zero.stage >= 3 else weights * launcher.nproc_per_node
    saved_weights = size.weight_bytes * size.trainable
    checkpoint = saved_weights + module_copy + optimizer_on_disk
    final_model = saved_weights  # a PeftModel saves its adapter only
    lora = settings.finetuning.method == "lora"
    # Registration merges a LoRA adapter into its base unless keep_adapter is set.
    registered = saved_weights if lora and settings.finetuning.keep_adapter else weights
    limit = settings.trainer.get("save_total_limit")
    # No limit keeps every checkpoint; counted here as one, so the figure is a floor.
    kept = (int(limit) if limit is not None else 1) + 1
    return ResourcePlan(
        model=size,
        zero=zero,
        ranks_per_node=launcher.nproc_per_node,
        nodes=launcher.nnodes,
        save_total_limit=None if limit is None else int(limit),
        gpu_per_rank=gpu,
        host_per_node=load + host_state,
        checkpoint=checkpoint,
        final_model=final_model,
        registered=registered,
        disk=kept * checkpoint + final_model,
    )


def free_bytes(folder: str | Path) -> int:
    """Free space where ``folder`` is (or would be created)."""
    path = Path(folder).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def disk_shortfall(
    resource_plan: ResourcePlan, checkpoint_root: str, run_dir: Path | None = None
) -> str | None:
    """Why ``checkpoint_root`` cannot hold the run, or None when it can.

    Checkpoints a resumed run already holds in ``run_dir`` count as space it has.
    """
    checkpoints = run_dir / CHECKPOINT_DIR if run_dir else None
    held = (
        sum(path.stat().st_size for path in checkpoints.rglob("*") if path.is_file())
        if checkpoints and checkpoints.is_dir()
        else 0
    )
    free = free_bytes(checkpoint_root)
    if free + held >= resource_plan.disk:
        return None
    return (
        f"train.checkpoint_root ({checkpoint_root}) has {free / GB:.1f} GB free"
        + (f" (and {held / GB:.1f} GB of this run's checkpoints)" if held else "")
        + f", but the run needs ~{resource_plan.disk / GB:.1f} GB (checkpoints of "
        f"~{resource_plan.checkpoint / GB:.1f} GB each and the final model): free "
        "space, lower trainer.save_total_limit, or set train.plan.on_short_disk: warn"
    )


class ShortOfDisk(RuntimeError):
    """The checkpoint folder's free space is below the run's planned disk."""


def announce(settings: TrainSettings, run_dir: Path | None = None) -> ResourcePlan:
    """Log the run's plan; refuse (or warn, per ``train.plan.on_short_disk``) a short disk.

    ``run_dir``: the run folder, whose checkpoints (a resumed run) are already paid for.
    """
    resource_plan = plan(model_size(model_config(settings), settings), settings)
    for line in resource_plan.lines():
        logger.info("Resource plan: %s", line)
    shortfall = disk_shortfall(resource_plan, settings.checkpoint_root, run_dir)
    if shortfall and settings.plan.on_short_disk == "refuse":
        raise ShortOfDisk(shortfall)
    if shortfall:
        logger.warning("%s", shortfall)
    return resource_plan
