"""Reproducible million-scale instruction files built from ``../shared`` (bench input only).

Construction (documented in docs/clean.md): pool every record of the four shared files
in a fixed order, draw ``size`` of them uniformly WITH replacement using
``numpy.random.default_rng(seed)``, and give each draw light, seeded edits so that the
copies are near, not exact, duplicates:

* instruction, with probability 0.7: one or two edits among deleting a character,
  swapping two neighbours, inserting a filler ("请", "一下", "，", "的") and
  replacing/adding the final punctuation ("。", "？", "！");
* output, with probability 0.3: one character deleted or a filler inserted.

Nothing is written into the project: the file goes to a folder the caller names.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SHARED_FILES = (
    "alpaca_zh_openchinese_v3.json",
    "alpaca_zh_carbonz0.json",
    "huatuo_med_zh.json",
    "lawyer_llama_legal.json",
)
FILLERS = ("请", "一下", "，", "的")
ENDINGS = ("。", "？", "！")


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


def _edit(text: str, rng: np.random.Generator, kinds: int) -> str:
    kind = int(rng.integers(kinds))
    if not text:
        return text
    at = int(rng.integers(len(text)))
    if kind == 0:  # delete one character
        return text[:at] + text[at + 1 :]
    if kind == 1:  # insert a filler
        return text[:at] + FILLERS[int(rng.integers(len(FILLERS)))] + text[at:]
    if kind == 2 and len(text) > 1:  # swap neighbours
        at = min(at, len(text) - 2)
        return text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    ending = ENDINGS[int(rng.integers(len(ENDINGS)))]
    return (text[:-1] if text[-1] in "。？！?!." else text) + ending


def perturbed_records(
    pool: list[dict[str, str]], size: int, seed: int
) -> list[dict[str, str]]:
    """``size`` seeded draws from ``pool`` with light seeded edits (see module doc)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(pool), size=size)
    records = []
    for pick in picks.tolist():
        record = dict(pool[pick])
        if rng.random() < 0.7:
            for _ in range(int(rng.integers(1, 3))):
                record["instruction"] = _edit(record["instruction"], rng, kinds=4)
        if rng.random() < 0.3:
            record["output"] = _edit(record["output"], rng, kinds=2)
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
