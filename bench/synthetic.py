"""Reproducible million-scale instruction files built from ``../shared`` (bench input only).

Two corpora, both seeded and written to a folder the caller names (never the project):

* :func:`distinct_records` (the main input): new instructions from a character-level
  Markov chain of order 2 fitted on every shared instruction. Each record starts with
  the first two characters of a random shared instruction, draws each next character
  from the chain, and ends at an end mark or at a length drawn from the shared
  instructions' lengths; chain outputs under ``MIN_CHARS`` (8) characters are drawn
  again; input and output are those of a random shared record. Then
  ``near_share`` (3 %) of the records are light-edit copies of a random earlier record
  (one or two edits: delete a character, swap neighbours, insert a filler, change the
  final punctuation).
* :func:`resampled_records` (the second, labelled row): draws WITH replacement from the
  shared pool, each draw lightly edited: most of it is removed as duplicates.
"""

from __future__ import annotations

import bisect
import json
import os
import random
from collections import defaultdict
from itertools import accumulate
from pathlib import Path

# The shared data the corpora are built from, and the seed every bench builds with.
SHARED_DIR = Path(
    os.environ.get(
        "BELLE_SHARED_DATA",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "zh_instructions",
    )
)
SEED = 20240601
SHARED_FILES = (
    "alpaca_zh_openchinese_v3.json",
    "alpaca_zh_carbonz0.json",
    "huatuo_med_zh.json",
    "lawyer_llama_legal.json",
)
FILLERS = ("请", "一下", "，", "的")
ENDINGS = ("。", "？", "！")
ORDER = 2
# Shorter chain outputs are drawn again: on 4-7 characters an order-2 chain has few
# distinct outcomes, so they repeat each other far more than real instructions do (at
# 300K, 83 % of such records were near duplicates against 12 % of longer ones).
MIN_CHARS = 8


def load_shared_pool(shared_dir: Path) -> list[dict[str, str]]:
    """All shared records, in file order, reduced to the three Alpaca fields + source."""
    pool = []
    for name in SHARED_FILES:
        for record in json.loads((shared_dir / name).read_text(encoding="utf-8")):
            pool.append(
                {
                    "instruction": record["instruction"],
                    "input": record.get("input") or "",
                    "output": record["output"],
                    "source": Path(name).stem,
                }
            )
    return pool


def light_edit(text: str, rng: random.Random) -> str:
    """One seeded light edit: delete, insert a filler, swap neighbours, or re-punctuate."""
    if not text:
        return text
    kind, at = rng.randrange(4), rng.randrange(len(text))
    if kind == 0:
        return text[:at] + text[at + 1 :]
    if kind == 1:
        return text[:at] + rng.choice(FILLERS) + text[at:]
    if kind == 2 and len(text) > 1:
        at = min(at, len(text) - 2)
        return text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    return (text[:-1] if text[-1] in "。？！?!." else text) + rng.choice(ENDINGS)


class _CharChain:
    """Order-2 character Markov chain: context -> (next chars, cumulative counts)."""

    def __init__(self, texts: list[str]) -> None:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for text in texts:
            for at in range(len(text) - ORDER):
                counts[text[at : at + ORDER]][text[at + ORDER]] += 1
        self.table = {
            context: (list(following), list(accumulate(following.values())))
            for context, following in counts.items()
        }

    def generate(self, start: str, length: int, rng: random.Random) -> str:
        text = start
        while len(text) < length:
            entry = self.table.get(text[-ORDER:])
            if entry is None:
                break
            chars, cumulative = entry
            char = chars[bisect.bisect(cumulative, rng.random() * cumulative[-1])]
            text += char
            if char in "。？！?!":
                break
        return text


def distinct_records(
    pool: list[dict[str, str]], size: int, seed: int, near_share: float = 0.03
) -> list[dict[str, str]]:
    """``size`` mostly distinct records (Markov instructions + light-edit copies)."""
    rng = random.Random(seed)
    instructions = [record["instruction"] for record in pool]
    chain = _CharChain(instructions)
    lengths = [len(text) for text in instructions if len(text) >= MIN_CHARS]
    starts = [text[:ORDER] for text in instructions if len(text) > ORDER]
    records: list[dict[str, str]] = []
    while len(records) < size:
        if records and rng.random() < near_share:
            record = dict(rng.choice(records))
            for _ in range(rng.randint(1, 2)):
                record["instruction"] = light_edit(record["instruction"], rng)
            record["source"] = "near_copy"
        else:
            donor = rng.choice(pool)
            instruction = ""
            while len(instruction) < MIN_CHARS:
                instruction = chain.generate(
                    rng.choice(starts), rng.choice(lengths), rng
                )
            record = {
                "instruction": instruction,
                "input": donor["input"],
                "output": donor["output"],
                "source": "markov",
            }
        records.append(record)
    return records


def resampled_records(
    pool: list[dict[str, str]], size: int, seed: int
) -> list[dict[str, str]]:
    """``size`` seeded draws from ``pool`` with replacement, 70 % lightly edited."""
    rng = random.Random(seed)
    records = []
    for _ in range(size):
        record = dict(rng.choice(pool))
        if rng.random() < 0.7:
            for _ in range(rng.randint(1, 2)):
                record["instruction"] = light_edit(record["instruction"], rng)
        records.append(record)
    return records


def write_json_lines(records: list[dict[str, str]], path: Path) -> Path:
    """One JSON object a line (what ``InstructionFileDataset`` reads fastest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False))
            handle.write("\n")
    return path


def write_distinct_parquet(
    pool: list[dict[str, str]],
    size: int,
    seed: int,
    path: Path,
    block: int = 1_000_000,
) -> Path:
    """:func:`distinct_records` at any size, written block by block as Parquet.

    Block ``b`` is ``distinct_records(pool, block, seed + b)`` (its light-edit copies
    repeat records of the same block), so the first block is the 1M corpus of
    bench/dedup.py and memory holds one block, never ``size`` records. Row groups of
    100,000 records. Written to a temp name and renamed, so a cut run leaves nothing.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    writer = None
    for number, start in enumerate(range(0, size, block)):
        records = distinct_records(pool, min(block, size - start), seed + number)
        table = pa.Table.from_pylist(records)
        if writer is None:
            writer = pq.ParquetWriter(partial, table.schema)
        writer.write_table(table, row_group_size=100_000)
    if writer is not None:
        writer.close()
    partial.rename(path)
    return path
