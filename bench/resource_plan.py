"""The train node's memory and disk plan for BELLE's recipe, printed as a Markdown table.

    python bench/resource_plan.py            # BLOOMZ-7B1-mt on 8 GPUs (conf/belle)

No download: BLOOMZ-7B1-mt's config is written from its architecture (30 layers, hidden
4096, 32 heads, vocab 250,880: ``config.json`` of ``bigscience/bloomz-7b1-mt`` on the
Hugging Face hub, the same shape as ``bench/gpu_check.py``'s full shape, whose test
checks its 7,069,016,064 parameters). The figures come from
:mod:`belle_kedro.pipelines.train.resources`, the code the train node logs its plan
with, for ``conf/belle``'s train block and three variations of it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kedro.config import OmegaConfigLoader
from transformers import BloomConfig

from belle_kedro.common.config import build
from belle_kedro.pipelines.train import resources
from belle_kedro.pipelines.train.settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
BLOOMZ_7B1_MT = BloomConfig(n_layer=30, hidden_size=4096, n_head=32, vocab_size=250880)


def belle_settings() -> TrainSettings:
    """``conf/belle``'s train block as ``kedro run --env belle`` resolves it."""
    loader = OmegaConfigLoader(
        conf_source=str(ROOT / "conf"),
        base_env="base",
        default_run_env="belle",
        merge_strategy={"parameters": "soft"},
    )
    settings = build(TrainSettings, loader["parameters"]["train"], "train")
    assert settings.deepspeed is not None
    return dataclasses.replace(settings, deepspeed=str(ROOT / settings.deepspeed))


def main() -> None:
    belle = belle_settings()
    zero3 = str(ROOT / "conf" / "base" / "deepspeed" / "zero3_offload.json")
    lora = dataclasses.replace(
        belle, finetuning=dataclasses.replace(belle.finetuning, method="lora")
    )
    rows = {
        "conf/belle: full, ZeRO-2, 8 ranks": belle,
        "full, ZeRO-3 + CPU offload, 8 ranks": dataclasses.replace(
            belle, deepspeed=zero3
        ),
        "LoRA r 16, ZeRO-2, 8 ranks": lora,
        "full, ZeRO-2, 16 ranks (2 nodes)": dataclasses.replace(
            belle,
            launcher=dataclasses.replace(
                belle.launcher, nnodes=2, master_addr="10.0.0.1"
            ),
        ),
    }
    print(
        "| run | GPU memory per rank | host RAM per node | one checkpoint "
        "| disk in checkpoint_root |"
    )
    print("|---|---|---|---|---|")
    for label, settings in rows.items():
        plan = resources.plan(resources.model_size(BLOOMZ_7B1_MT, settings), settings)
        print(
            f"| {label} | {plan.gpu_per_rank / resources.GB:.1f} GB "
            f"| {plan.host_per_node / resources.GB:.1f} GB "
            f"| {plan.checkpoint / resources.GB:.1f} GB "
            f"| {plan.disk / resources.GB:.1f} GB |"
        )
    print()
    print("conf/belle's plan as the train node logs it:")
    plan = resources.plan(resources.model_size(BLOOMZ_7B1_MT, belle), belle)
    for line in plan.lines():
        print(f"    {line}")


if __name__ == "__main__":
    main()
