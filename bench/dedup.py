"""Near-duplicate removal and the clean pipeline at scale (a benchmark, not a test).

    python bench/dedup.py                      # every row, 1M records (long)
    python bench/dedup.py --size 20000         # the same rows at a small scale
    python bench/dedup.py --alpaca-size 5000   # time the Alpaca-style loop on 5K only
    python bench/dedup.py --data-juicer-python /tmp/dj/bin/python   # + data-juicer

Prints one table from one run. The input (bench/synthetic.py) is a mostly distinct
Chinese corpus: an order-2 character Markov chain fitted on ../shared/data plus 3 %
light-edit copies. Rows:
- ``--size`` records through the clean pipeline in a real Kedro session (subprocess):
  wall time and peak RSS of that process;
- near-duplicate pass alone on the first 10 % and on all records: the growth exponent;
- 20K sample: kept set vs the brute-force pass (tests/support/brute_force.py);
- 100K sample: recall of the exact pass's drops (exact all-pairs ROUGE-L + greedy);
- ours vs the Alpaca-style loop (each new instruction scored against every kept one,
  multiprocessing.Pool over all cores) on the same first ``--alpaca-size`` records;
- the resampled corpus (draws with replacement from the shared pool) through the
  pipeline, as a second, labelled row;
- peers on the same keys (bench/peers.py, each method in its own process, their
  documented defaults for Chinese written there): rensa, datasketch and ours, wall and
  CPU seconds at 10 % and 100 % of ``--size``, peak RSS, drops, and recall/precision of
  their drops on the first 20K against the brute-force pass; data-juicer too when
  ``--data-juicer-python`` names the Python of a separate venv holding it.
Needs ../shared/data/zh_instructions (or BELLE_SHARED_DATA); exits cleanly without it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from multiprocessing.pool import Pool
from pathlib import Path

import numpy as np
import yaml
from rapidfuzz import process
from rapidfuzz.distance import Indel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from belle_kedro.common.config import build  # noqa: E402
from belle_kedro.common.text import rouge_l_f  # noqa: E402
from belle_kedro.pipelines.clean import dedup  # noqa: E402
from belle_kedro.pipelines.clean.settings import MinHashSettings  # noqa: E402
from bench import kedro_run, machine, synthetic  # noqa: E402
from tests.support.brute_force import exhaustive_near_duplicates  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = synthetic.SHARED_DIR
THRESHOLD = 0.7
SEED = synthetic.SEED
PARAMS = yaml.safe_load((ROOT / "conf/base/parameters_clean.yml").read_text())["clean"]
MINHASH = build(
    MinHashSettings, PARAMS["matching"]["minhash"], "clean.matching.minhash"
)


def ours(keys: list[str]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    found = dedup.find_near_duplicates(keys, threshold=THRESHOLD, minhash=MINHASH)
    return found.keep, time.perf_counter() - start


def alpaca_style(keys: list[str], pool: Pool) -> np.ndarray:
    """Alpaca's loop: score each new instruction against all kept ones in a process pool."""
    kept: list[str] = []
    keep = np.ones(len(keys), dtype=bool)
    for position, key in enumerate(keys):
        if not key:  # ROUGE-L of an empty text is 0: it repeats nothing
            continue
        scores = pool.map(partial(rouge_l_f, key), kept, chunksize=4096) if kept else []
        if max(scores, default=0.0) >= THRESHOLD:
            keep[position] = False
        else:
            kept.append(key)
    return keep


def exact_pass(keys: list[str]) -> np.ndarray:
    """Exact greedy pass: all pairs by rapidfuzz cdist (every core), then the greedy rule."""
    later_partners: list[list[int]] = [[] for _ in keys]
    for begin in range(0, len(keys), 256):
        scores = process.cdist(
            keys[begin : begin + 256],
            keys,
            scorer=Indel.normalized_similarity,
            score_cutoff=THRESHOLD - 1e-6,
            dtype=np.float32,
            workers=-1,
        )
        for row, column in zip(*np.nonzero(scores), strict=True):
            i, j = begin + int(row), int(column)
            if i < j and rouge_l_f(keys[i], keys[j]) >= THRESHOLD:
                later_partners[j].append(i)
    keep = np.ones(len(keys), dtype=bool)
    for j, partners in enumerate(later_partners):
        if any(keep[i] for i in partners):
            keep[j] = False
    return keep


def pipeline_run(records: list[dict[str, str]], workdir: Path) -> dict:
    """``records`` through the clean pipeline in a fresh Kedro session (subprocess)."""
    data = synthetic.write_json_lines(records, workdir / "input.jsonl")
    return kedro_run.clean_run(
        {
            "type": "belle_kedro.datasets.instructions.InstructionFileDataset",
            "filepath": str(data),
        },
        workdir,
    )


def peer_rows(
    keys: list[str], exact_20k: np.ndarray, workdir: Path, data_juicer: str | None
) -> list[tuple[str, str, str]]:
    """One row per peer method: each in its own process at 10 % and 100 % of ``keys``.

    ``data_juicer``: the Python of a venv with py-data-juicer (None: no such row).
    """
    rows = []
    walls: dict[str, float] = {}
    methods = [("rensa", sys.executable), ("datasketch", sys.executable)]
    methods += [("data_juicer", data_juicer)] if data_juicer else []
    for method, python in [*methods, ("ours", sys.executable)]:
        runs = []
        for size in (len(keys) // 10, len(keys)):
            keys_path = workdir / f"keys_{size}.json"
            if not keys_path.exists():
                keys_path.write_text(json.dumps(keys[:size], ensure_ascii=False))
            out = workdir / f"{method}_{size}.npy"
            finished = subprocess.run(
                [
                    python,
                    str(ROOT / "bench/peers.py"),
                    method,
                    str(keys_path),
                    str(out),
                ],
                check=False,
                capture_output=True,
                text=True,
            )
            if finished.returncode:  # a peer that fails is a row saying why
                break
            runs.append((json.loads(finished.stdout.splitlines()[-1]), np.load(out)))
        if len(runs) < 2:
            rows.append(
                (
                    f"peer `{method}` (bench/peers.py), {size:,} keys",
                    f"failed (exit {finished.returncode}): "
                    + " ".join(finished.stderr.split())[-600:],
                    "ours within 2x of rensa's wall at 100 %",
                )
            )
            continue
        sample = runs[-1][1][: len(exact_20k)]
        theirs, truth = ~sample, ~exact_20k
        (small, _), (full, keep) = runs
        walls[method] = full["wall"]
        rows.append(
            (
                f"peer `{method}` (bench/peers.py), {len(keys) // 10:,} / {len(keys):,}",
                f"{small['wall']:.1f} s / {full['wall']:.1f} s wall, {full['cpu']:.0f} CPU s "
                f"(driver), peak RSS {full['rss_gib']:.2f} GiB; drops {(~keep).sum():,}; "
                f"first {len(exact_20k):,}: recall {(theirs & truth).sum() / max(1, truth.sum()):.3f} "
                f"({(theirs & truth).sum():,} of {truth.sum():,}), precision "
                f"{(theirs & truth).sum() / max(1, theirs.sum()):.3f}",
                "ours within 2x of rensa's wall at 100 %",
            )
        )
    rows.append(
        (
            f"ours vs rensa, {len(keys):,} keys (the two rows above)",
            f"{walls['ours'] / walls['rensa']:.2f}x rensa's wall",
            "<= 2x",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--alpaca-size", type=int, default=20_000)
    parser.add_argument("--skip-resampled", action="store_true")
    parser.add_argument(
        "--data-juicer-python",
        help="python of a separate venv with py-data-juicer: adds its peer row",
    )
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent")
        return
    command = " ".join(["python bench/dedup.py", *sys.argv[1:]])
    # The load average beside the table says whether other jobs shared the cores.
    load_at_start = machine.load_average()
    run_start = time.perf_counter()
    pool = synthetic.load_shared_pool(SHARED)
    start = time.perf_counter()
    records = synthetic.distinct_records(pool, args.size, SEED)
    built = time.perf_counter() - start
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="belle_bench_") as workdir:
        run = pipeline_run(records, Path(workdir))
    rows.append(
        (
            f"{run['in']:,} distinct records through `clean` (Kedro session)",
            f"{run['wall']:.0f} s wall, peak RSS {run['rss_gib']:.2f} GiB; {run['in']:,} -> {run['out']:,} "
            f"({run['out'] / run['in']:.1%} kept; near-dup drops {run['near']:,})",
            "<= 600 s, <= 8 GiB, >= 70 % kept",
        )
    )
    keys = dedup.comparison_keys(
        [record["instruction"] for record in records]
    ).to_pylist()  # the exact passes and peers take Python strings
    small, full = keys[: len(keys) // 10], keys
    _, small_s = ours(small)
    _, full_s = ours(full)
    exponent = math.log(full_s / small_s) / math.log(len(full) / len(small))
    rows.append(
        (
            f"near-dup pass alone, {len(small):,} vs {len(full):,}",
            f"{small_s:.1f} s vs {full_s:.1f} s: n^{exponent:.2f}",
            "<= n^1.2",
        )
    )
    sample = keys[:20_000]
    keep, _ = ours(sample)
    brute = exhaustive_near_duplicates(sample, threshold=THRESHOLD)
    rows.append(
        (
            f"{len(sample):,} sample vs brute force",
            f"kept {keep.sum():,} vs {brute.sum():,}; {(keep != brute).sum()} records differ",
            "identical",
        )
    )
    sample = keys[:100_000]
    keep, _ = ours(sample)
    start = time.perf_counter()
    exact = exact_pass(sample)
    exact_s = time.perf_counter() - start
    both = (~keep & ~exact).sum()
    rows.append(
        (
            f"{len(sample):,} sample vs the exact pass ({exact_s:.0f} s)",
            f"recall {both / max(1, (~exact).sum()):.4f} of {(~exact).sum():,} exact drops; "
            f"{(~keep & exact).sum()} drops the exact pass keeps (each verified >= 0.7 vs a kept record)",
            "recall >= 0.99",
        )
    )
    with tempfile.TemporaryDirectory(prefix="belle_peers_") as workdir:
        rows.extend(peer_rows(keys, brute, Path(workdir), args.data_juicer_python))
    sample = keys[: args.alpaca_size]
    keep, ours_s = ours(sample)
    with Pool(os.cpu_count()) as workers:
        start = time.perf_counter()
        theirs = alpaca_style(sample, workers)
        theirs_s = time.perf_counter() - start
    rows.append(
        (
            f"ours vs Alpaca-style loop (Pool({os.cpu_count()})), first {len(sample):,} records, each timed once",
            f"{ours_s:.2f} s vs {theirs_s:.1f} s = {theirs_s / ours_s:.0f}x; {(keep != theirs).sum()} records differ",
            ">= 100x at 20,000"
            + ("" if len(sample) >= 20_000 else f" (run at {len(sample):,} only)"),
        )
    )
    if not args.skip_resampled:
        resampled = synthetic.resampled_records(pool, args.size, SEED)
        with tempfile.TemporaryDirectory(prefix="belle_bench_") as workdir:
            run = pipeline_run(resampled, Path(workdir))
        rows.append(
            (
                f"second row, RESAMPLED corpus: {run['in']:,} draws with replacement from {len(pool):,}",
                f"{run['wall']:.0f} s wall; {run['in']:,} -> {run['out']:,} (index never holds more than the pool)",
                "(easy data: not the goal row)",
            )
        )
    minutes, seconds = divmod(round(time.perf_counter() - run_start), 60)
    machine.print_table(
        command,
        load_at_start,
        f"corpus built in {built:.0f} s, seed {SEED}; {minutes} min {seconds} s in all",
        rows,
    )


if __name__ == "__main__":
    main()
