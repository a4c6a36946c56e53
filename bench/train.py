"""Benchmark: our SFT data path vs naive padded batches, same data and model, one run.

    python bench/train.py                   # ../shared/data sample if present, else synthetic
    python bench/train.py --records 1024 --batch-size 8 --tokenizer smollm2_gguf

Both arms train the same freshly seeded tiny BLOOM (the conf/base model) for one epoch
over the same tokenised records with the same collator; only the batch order differs:

- ours: transformers' ``LengthGroupedSampler`` (``train_sampling_strategy:
  group_by_length``: megabatches sorted by length),
- naive: random order, every batch padded to its longest example.

Printed side by side: padding waste (padding share of the batch tensors), real
(non-pad) tokens/s and padded tokens/s. Goal: padding waste <= 5% for ours.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from pathlib import Path
from typing import TypedDict

import pandas as pd
import torch
import yaml
from torch.utils.data import DataLoader, RandomSampler, Sampler
from transformers import PreTrainedTokenizerBase
from transformers.trainer_pt_utils import LengthGroupedSampler

from belle_kedro.common.config import build
from belle_kedro.pipelines.train.models import build_tiny_bloom, load_tokenizer
from belle_kedro.pipelines.train.settings import TinyBloomSettings, TrainSettings
from belle_kedro.pipelines.train.sft import PaddingStats, SFTCollator, SFTDataset

ROOT = Path(__file__).resolve().parents[1]
SHARED_FILE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "zh_instructions"
    / "alpaca_zh_carbonz0.json"
)
TOPICS = (
    "春天",
    "数学",
    "历史",
    "音乐",
    "编程",
    "天气",
    "旅行",
    "健康",
    "茶叶",
    "星空",
)


def declared_settings() -> TrainSettings:
    """conf/base's ``train`` block as typed settings (what a default run trains with)."""
    block = yaml.safe_load(
        (ROOT / "conf" / "base" / "parameters_train.yml").read_text(encoding="utf-8")
    )["train"]
    return build(TrainSettings, block, "train")


def synthetic_records(count: int, seed: int) -> pd.DataFrame:
    """Original records whose answer lengths follow a long-tailed (log-normal) spread."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        topic = rng.choice(TOPICS)
        sentences = max(1, int(rng.lognormvariate(1.4, 0.8)))
        rows.append(
            {
                "instruction": f"请介绍{topic}的要点。",
                "input": f"第{index}位读者的问题。" if index % 4 == 0 else "",
                "output": "".join(
                    f"{topic}的第{n + 1}个要点值得记住。" for n in range(sentences)
                ),
            }
        )
    return pd.DataFrame(rows)


def load_records(count: int, seed: int) -> tuple[pd.DataFrame, str]:
    if SHARED_FILE.is_file():
        records = pd.DataFrame(json.loads(SHARED_FILE.read_text(encoding="utf-8")))
        records = records.loc[:, ["instruction", "input", "output"]].fillna("")
        return records.sample(
            n=min(count, len(records)), random_state=seed
        ).reset_index(drop=True), SHARED_FILE.name
    return synthetic_records(count, seed), "synthetic"


class ArmFigures(TypedDict):
    """What one arm measured."""

    arm: str
    padding_waste: float
    real_tokens_per_s: float
    padded_tokens_per_s: float
    seconds: float
    real_tokens: int
    padded_tokens: int


def run_arm(
    name: str,
    sampler: Sampler[int],
    *,
    dataset: SFTDataset,
    tokenizer: PreTrainedTokenizerBase,
    model_config: TinyBloomSettings,
    batch_size: int,
    seed: int,
    threads: int,
) -> ArmFigures:
    """One epoch of real training steps; returns the measured figures."""
    torch.set_num_threads(threads)
    model = build_tiny_bloom(tokenizer, model_config, seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    collator = SFTCollator(tokenizer.pad_token_id)
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, collate_fn=collator
    )
    stats = PaddingStats()
    started = time.perf_counter()
    for batch in loader:
        stats.add(batch["attention_mask"])
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - started
    return {
        "arm": name,
        "padding_waste": stats.waste,
        "real_tokens_per_s": stats.real_tokens / elapsed,
        "padded_tokens_per_s": stats.padded_tokens / elapsed,
        "seconds": elapsed,
        "real_tokens": stats.real_tokens,
        "padded_tokens": stats.padded_tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument(
        "--tokenizer", default="bytes", help="bytes (conf/base) or smollm2_gguf"
    )
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    declared = declared_settings().model
    tokenizer = load_tokenizer(dataclasses.replace(declared, tokenizer=args.tokenizer))
    records, source = load_records(args.records, args.seed)
    dataset = SFTDataset.from_records(
        records, tokenizer, args.max_length, batch_size=1000
    )
    model_config = dataclasses.replace(
        declared.tiny_bloom, n_layer=args.layers, hidden_size=args.hidden_size
    )
    print(
        f"data: {len(dataset)} records from {source} ({dataset.dropped} dropped), "
        f"tokenizer {args.tokenizer} ({len(tokenizer)} ids), max_length {args.max_length}, "
        f"batch {args.batch_size}, tiny BLOOM {args.layers}x{args.hidden_size}, {args.threads} threads"
    )
    ours = LengthGroupedSampler(
        args.batch_size,
        lengths=dataset.lengths.tolist(),
        generator=torch.Generator().manual_seed(args.seed),
    )
    naive = RandomSampler(dataset, generator=torch.Generator().manual_seed(args.seed))
    shared = {
        "dataset": dataset,
        "tokenizer": tokenizer,
        "model_config": model_config,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "threads": args.threads,
    }
    results = [
        run_arm("naive (random, pad to longest)", naive, **shared),
        run_arm("ours (length-grouped)", ours, **shared),
    ]
    print(
        f"{'arm':34} {'padding waste':>14} {'real tok/s':>12} {'padded tok/s':>13} {'seconds':>8}"
    )
    for row in results:
        print(
            f"{row['arm']:34} {row['padding_waste']:>13.2%} {row['real_tokens_per_s']:>12,.0f} "
            f"{row['padded_tokens_per_s']:>13,.0f} {row['seconds']:>8.1f}"
        )
    speedup = results[1]["real_tokens_per_s"] / results[0]["real_tokens_per_s"]
    goal = "met" if results[1]["padding_waste"] <= 0.05 else "NOT met"
    print(f"real-token throughput x{speedup:.2f}; padding waste goal (<= 5%) {goal}")


if __name__ == "__main__":
    main()
