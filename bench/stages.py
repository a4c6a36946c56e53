"""Peak memory of the split and the token cache over clean's output (a benchmark).

    python bench/stages.py CLEAN_PARQUET [--variant-size 2000000]

Run by bench/scale.py on the largest corpus's ``clean_instructions``. In one process,
phase by phase, a sampler thread records the process's peak RSS: reading the records;
the split (a 1 % stratified held-out set, then BELLE's nested variants 200K / 600K /
1M / ``--variant-size``); the token cache's record keys over the whole training pool;
and the token cache built for the 200K variant (SmolLM2's fast tokenizer, 512 tokens,
in a temp folder; it holds one tokenizer batch at a time at any variant size). Prints one JSON line: per phase, seconds and peak GiB.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from belle_kedro.common.config import build  # noqa: E402
from belle_kedro.pipelines.split.sampling import (  # noqa: E402
    holdout_split,
    nested_variants,
)
from belle_kedro.pipelines.split.settings import SplitSettings  # noqa: E402
from belle_kedro.pipelines.train.models import load_smollm2_tokenizer  # noqa: E402
from belle_kedro.pipelines.train.settings import TokenCacheSettings  # noqa: E402
from belle_kedro.pipelines.train.token_cache import (  # noqa: E402
    build_view,
    record_keys,
)

SAMPLE_SECONDS = 0.2
MAX_LENGTH = 512


class Phases:
    """Seconds and peak RSS (GiB) of each named phase of this process."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, float]] = {}
        self._peak = 0.0
        self._process = psutil.Process()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        done = threading.Event()
        self._peak = self._rss()
        sampler = threading.Thread(target=self._sample, args=(done,))
        sampler.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            done.set()
            sampler.join()
            self.results[name] = {
                "seconds": round(time.perf_counter() - start, 1),
                "peak_gib": round(max(self._peak, self._rss()), 2),
            }

    def _rss(self) -> float:
        return float(self._process.memory_info().rss) / 2**30

    def _sample(self, done: threading.Event) -> None:
        while not done.wait(SAMPLE_SECONDS):
            self._peak = max(self._peak, self._rss())


def measure(records_path: Path, variant_size: int, workdir: Path) -> dict[str, Any]:
    """Every phase's seconds and peak RSS over ``records_path``."""
    phases = Phases()
    with phases.phase("read clean_instructions"):
        records = pd.read_parquet(records_path)
    settings = build(
        SplitSettings,
        {
            "seed": 42,
            "holdout_size": None,
            "holdout_fraction": 0.01,
            # BELLE's sizes, each at most 90 % of the records (a small corpus still runs).
            "variant_sizes": {
                name: min(size, len(records) * 9 // 10)
                for name, size in (
                    ("small", 200_000),
                    ("medium", 600_000),
                    ("large", 1_000_000),
                    ("xlarge", variant_size),
                )
            },
            "mix_in": {"mode": "pool", "size": None},
        },
        "split",
    )
    with phases.phase("split: held-out set"):
        holdout, train_pool = holdout_split(records, settings)
    del records
    empty = pd.DataFrame({"instruction": [], "input": [], "output": []})
    with phases.phase("split: nested variants"):
        variants = nested_variants(train_pool, holdout, empty, settings)
    with phases.phase(f"token cache: record keys of {len(train_pool):,} records"):
        record_keys(train_pool)
    tokenizer = load_smollm2_tokenizer(workdir / "tokenizers")
    cache = build(
        TokenCacheSettings,
        {
            "root": str(workdir / "token_cache"),
            "batch_size": 1000,
            "max_bytes": None,
            "max_age_days": None,
        },
        "train.token_cache",
    )
    # Tokenising holds one batch at a time whatever the variant's size; the 200K
    # variant keeps the run short (SmolLM2's tokenizer: about 2K records/s a core).
    smallest = variants["small"]
    del variants
    with phases.phase(f"token cache: tokenise {len(smallest):,} records"):
        build_view(cache, smallest, tokenizer, MAX_LENGTH)
    return {"records": len(train_pool) + len(holdout), "phases": phases.results}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("records", type=Path)
    parser.add_argument("--variant-size", type=int, default=2_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="belle_stages_") as workdir:
        print(json.dumps(measure(args.records, args.variant_size, Path(workdir))))


if __name__ == "__main__":
    main()
