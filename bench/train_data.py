"""Benchmark: today's per-record tokenisation vs the token cache, same records, one run.

    python bench/train_data.py                  # 2,000,000 records (long on a small machine)
    python bench/train_data.py --size 20000     # a quick check

Input: ``--size`` records from :func:`bench.synthetic.distinct_records` (seed
``--seed``): instructions drawn from an order-2 character Markov chain fitted on every
instruction in ``../shared/data/zh_instructions`` (3 % light-edit near copies), each with
the input and output of a random shared record. The four nested variants are its first
10 / 30 / 50 / 100 % (BELLE's 200K / 600K / 1M / 2M at the default size), as split's
variants are prefixes of one seeded order. Tokenizer: SmolLM2's (the offline GGUF),
``max_length`` conf/belle's 1024.

Both sides, timed once each in this run on the same records:

- today: what every rank did before the cache: ``encode_example`` per record (two
  tokenizer calls) into Python lists, for its variant. Timed on the first
  ``--today-size`` records (all of them when it is the full size), since at 2M it takes
  most of an hour; its records/s is per record either way.
- cache: :func:`belle_kedro.pipelines.train.token_cache.build_view` for the four
  variants in size order (batched fast tokenizer, one shard per variant's new records,
  written to a temporary folder); records/s = records tokenised / total time.

Peak RSS of one rank: a subprocess loads the tokenizer (as a rank does), notes its RSS,
then holds the data: today's side encodes ``--today-size`` records into lists (figure per
record, scaled to the largest variant); the cache side opens the largest variant's view
(token ids read with ``os.pread``, per-record arrays memory-mapped), takes the lengths
the sampler needs and reads every example once. ``private`` is the growth of the
process's anonymous memory; ``peak`` the growth of its peak RSS, which also counts the
resident pages of memory-mapped cache files (the goal: <= 1 GiB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from belle_kedro.common.records import RECORD_COLUMNS, as_text_records  # noqa: E402
from belle_kedro.common.template import IGNORE_INDEX, build_prompt  # noqa: E402
from belle_kedro.pipelines.train import token_cache  # noqa: E402
from belle_kedro.pipelines.train.models import load_tokenizer  # noqa: E402
from belle_kedro.pipelines.train.settings import TokenCacheSettings  # noqa: E402
from bench.synthetic import distinct_records, load_shared_pool  # noqa: E402
from bench.train import declared_settings  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "zh_instructions"
VARIANT_SHARES = {"small": 0.1, "medium": 0.3, "large": 0.5, "xlarge": 1.0}
# Goals of issue 9.
SPEEDUP_GOAL = 10.0
RSS_GOAL_BYTES = 1 << 30


def smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer, loaded as conf/base's model settings would with it named."""
    model = declared_settings().model
    return load_tokenizer(dataclasses.replace(model, tokenizer="smollm2_gguf"))


def today_examples(
    records: pd.DataFrame, tokenizer: Any, max_length: int
) -> tuple[list[dict[str, list[int]]], int]:
    """The rank's data path before the cache: two tokenizer calls per record, lists."""
    examples, dropped = [], 0
    text = as_text_records(records, "training records")
    for instruction, input_text, output in text.loc[:, list(RECORD_COLUMNS)].itertuples(
        index=False
    ):
        prompt_ids = tokenizer(
            build_prompt(instruction, input_text), add_special_tokens=False
        )["input_ids"]
        answer_ids = [
            *tokenizer(output.strip(), add_special_tokens=False)["input_ids"],
            tokenizer.eos_token_id,
        ]
        input_ids = [*prompt_ids, *answer_ids][:max_length]
        labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_length]
        if all(label == IGNORE_INDEX for label in labels):
            dropped += 1
            continue
        examples.append({"input_ids": input_ids, "labels": labels})
    return examples, dropped


def memory_status() -> dict[str, int]:
    """Peak and current resident memory of this process, in bytes (Linux /proc)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def probe(args: argparse.Namespace) -> None:
    """A rank holding its data; prints JSON of its memory before and after."""
    tokenizer = smollm2_tokenizer()
    before = memory_status()
    if args.probe == "today":
        records = pd.read_parquet(args.records)
        examples, _ = today_examples(records, tokenizer, args.max_length)
        held = len(examples)
    else:
        fingerprint = token_cache.cache_fingerprint(tokenizer, args.max_length)["id"]
        dataset = token_cache.open_view(Path(args.view), fingerprint)
        lengths = dataset.lengths.tolist()  # what the length-grouped sampler holds
        tokens = sum(len(dataset[index]["input_ids"]) for index in range(len(dataset)))
        if tokens != sum(lengths):
            raise AssertionError("examples disagree with the offsets")
        held = len(dataset)
    print(json.dumps({"before": before, "after": memory_status(), "held": held}))


def run_probe(kind: str, max_length: int, **paths: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--probe",
        kind,
        "--max-length",
        str(max_length),
    ]
    for name, path in paths.items():
        command += [f"--{name}", str(path)]
    completed = subprocess.run(
        command, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def gib(value: float) -> str:
    return f"{value / (1 << 30):.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=2_000_000)
    parser.add_argument(
        "--today-size",
        type=int,
        default=100_000,
        help="records today's path is timed and measured on (at most --size)",
    )
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument(
        "--batch-size", type=int, default=declared_settings().token_cache.batch_size
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe", choices=["today", "cache"], help=argparse.SUPPRESS)
    parser.add_argument("--records", help=argparse.SUPPRESS)
    parser.add_argument("--view", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args)
        return
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is absent: this benchmark builds its input from it")
    command = " ".join(["python", "bench/train_data.py", *sys.argv[1:]])
    today_size = min(args.today_size, args.size)

    started = time.perf_counter()
    records = pd.DataFrame(
        distinct_records(load_shared_pool(SHARED), args.size, args.seed)
    ).loc[:, list(RECORD_COLUMNS)]
    distinct = len(records.drop_duplicates())
    print(
        f"built {len(records):,} records ({distinct:,} distinct) "
        f"in {time.perf_counter() - started:.0f}s"
    )
    tokenizer = smollm2_tokenizer()
    sizes = {name: round(args.size * share) for name, share in VARIANT_SHARES.items()}

    with tempfile.TemporaryDirectory(prefix="train_data_bench_") as work:
        work_dir = Path(work)
        today_records = records.iloc[:today_size]
        today_records.to_parquet(work_dir / "today.parquet", index=False)
        started = time.perf_counter()
        today_examples(today_records, tokenizer, args.max_length)
        today_seconds = time.perf_counter() - started

        tokenized, cache_seconds = {}, 0.0
        for name, size in sizes.items():
            started = time.perf_counter()
            view = token_cache.build_view(
                # No cleanup: the bench measures building, and reuse across variants.
                TokenCacheSettings(
                    root=str(work_dir / "cache"),
                    batch_size=args.batch_size,
                    max_bytes=None,
                    max_age_days=None,
                ),
                records.iloc[:size],
                tokenizer,
                args.max_length,
            )
            cache_seconds += time.perf_counter() - started
            token_cache.save_view(view, work_dir / name)
            tokenized[name] = view.tokenized
        cache_bytes = sum(
            path.stat().st_size
            for path in (work_dir / "cache").rglob("*")
            if path.is_file()
        )

        today_rank = run_probe(
            "today", args.max_length, records=work_dir / "today.parquet"
        )
        cache_rank = run_probe("cache", args.max_length, view=work_dir / "xlarge")

    largest = sizes["xlarge"]
    today_rate = today_size / today_seconds
    cache_rate = sum(tokenized.values()) / cache_seconds
    today_grown = today_rank["after"]["VmHWM"] - today_rank["before"]["VmRSS"]
    today_per_record = today_grown / today_size
    cache_private = cache_rank["after"]["RssAnon"] - cache_rank["before"]["RssAnon"]
    cache_peak = cache_rank["after"]["VmHWM"] - cache_rank["before"]["VmRSS"]
    today_tokenizations = sum(sizes.values())

    print()
    print(f"command: {command}")
    print(
        "machine: 2 CPU cores shared with other jobs while this ran; "
        f"tokenizer SmolLM2 ({len(tokenizer)} ids), max_length {args.max_length}, "
        f"batch {args.batch_size}; variants {sizes}"
    )
    print(f"{'':44} {'today (per record, lists)':>28} {'token cache':>22}")
    print(
        f"{'records/s (tokenisation)':44} {today_rate:>28,.0f} {cache_rate:>22,.0f}"
        f"   ({cache_rate / today_rate:.1f}x)"
    )
    print(
        f"{'records timed':44} {today_size:>28,} {sum(tokenized.values()):>22,}"
        f"   (today: {today_seconds:.0f}s, cache: {cache_seconds:.0f}s)"
    )
    print(
        f"{'rank RSS for its data, ' + f'{largest:,} records':44} "
        f"{gib(today_per_record * largest) + ' (scaled)':>28} "
        f"{gib(cache_private) + ' private':>22}"
    )
    print(
        f"{'  measured':44} "
        f"{gib(today_grown) + f' for {today_size:,}':>28} "
        f"{gib(cache_peak) + ' peak':>22}"
    )
    print(
        f"{'  per record':44} {today_per_record:>26,.0f} B "
        f"{cache_private / largest:>20,.0f} B"
    )
    print(
        f"{'tokenisations, four nested variants':44} "
        f"{today_tokenizations:>20,} per rank {sum(tokenized.values()):>14,} in all"
        f"   ({distinct:,} distinct records)"
    )
    print(f"{'  by variant (cache, in size order)':44} {tokenized}")
    print(f"{'cache on disk':44} {'':>28} {gib(cache_bytes):>22}")
    missed = []
    if cache_rate < SPEEDUP_GOAL * today_rate:
        missed.append(
            f"records/s {cache_rate / today_rate:.1f}x today's (goal {SPEEDUP_GOAL:.0f}x)"
        )
    if cache_peak > RSS_GOAL_BYTES:
        missed.append(f"rank peak RSS {gib(cache_peak)} (goal <= 1 GiB)")
    if sum(tokenized.values()) != distinct:
        missed.append(
            f"{sum(tokenized.values())} tokenisations for {distinct} distinct records"
        )
    if today_size < args.size:
        print(
            f"note: today's side was timed and measured on {today_size:,} of "
            f"{args.size:,} records; its RSS is scaled per record"
        )
    print("missed goals: " + ("; ".join(missed) if missed else "none"))


if __name__ == "__main__":
    main()
