"""Ten million records through ``clean`` on one machine, and the Ray route (a benchmark).

    python bench/scale.py                          # 1M and 10M, local and on Ray
    python bench/scale.py --sizes 100000 1000000 --ray-sizes 100000   # quick
    python bench/scale.py --workdir /data/belle_scale       # keep the corpora elsewhere

Builds each corpus once, reproducibly, from ../shared/data (or BELLE_SHARED_DATA) as
Parquet in row groups under ``--workdir`` (bench/synthetic.py's distinct corpus, block
by block: 1M records in memory at most), then runs the clean pipeline over it in a
fresh Kedro session (``InstructionFileDataset`` over the Parquet file, checked row group
by row group) and prints one table: wall time, peak RSS, records kept, near-duplicate drops, the growth exponent
between the two sizes, the driver's memory during the near-duplicate decision, and the
Ray route (``clean.engine: ray``, a local Ray with every core) at each of
``--ray-sizes`` with each process's peak and whether it kept exactly the local route's
records (a Ray run that fails is a row saying why, not the end of the table). Goals (issue 25): 10M <= 30 min and <= 12 GiB on two cores, growth
<= n^1.15 from 1M to 10M.

``--same-as SRC`` adds a row: ``clean`` over the smaller corpus once more with the
package under SRC (e.g. ``git clone`` of main, then ``SRC=clone/src``) and once with
this tree, both at ``--same-minhash`` (the old default, 1200 permutations / 6 rows),
and whether their ``clean_instructions`` Parquet and ``clean_report`` JSON are the same
bytes (a report from a later tree is compared without the sections added since).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import kedro_run, machine, synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = synthetic.SHARED_DIR
SEED = synthetic.SEED


def corpus(size: int, workdir: Path) -> Path:
    """The ``size``-record distinct corpus as Parquet, built once per size and seed."""
    path = workdir / f"distinct_{size}_{SEED}.parquet"
    if not path.exists():
        synthetic.write_distinct_parquet(
            synthetic.load_shared_pool(SHARED), size, SEED, path
        )
    return path


def run(path: Path, engine: str) -> dict:
    """``clean`` over ``path`` on ``engine`` in a fresh session (its own temp folder);
    its output is kept beside the corpus as ``clean_<engine>_<corpus>``."""
    with tempfile.TemporaryDirectory(prefix="belle_scale_") as folder:
        result = kedro_run.clean_run(
            {
                "type": "belle_kedro.datasets.instructions.InstructionFileDataset",
                "filepath": str(path),
            },
            Path(folder),
            {"clean": {"engine": engine}},
        )
        result["kept"] = path.with_name(f"clean_{engine}_{path.name}")
        shutil.move(result.pop("output"), result["kept"])
    return result


def stage_rows(kept: Path) -> list[tuple[str, str, str]]:
    """Split and token cache over ``kept`` (bench/stages.py, its own process)."""
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench/stages.py"), str(kept)],
        check=True,
        capture_output=True,
        text=True,
    )
    measured = json.loads(finished.stdout.splitlines()[-1])
    return [
        (
            f"{phase} ({measured['records']:,} clean records; bench/stages.py)",
            f"{result['seconds']:.0f} s, peak RSS {result['peak_gib']:.2f} GiB",
            "no Python object per record",
        )
        for phase, result in measured["phases"].items()
    ]


def same_outputs(path: Path, source: Path, minhash: list[int]) -> tuple[str, str, str]:
    """Whether this tree and the package under ``source`` write the same bytes."""
    permutations, rows = minhash
    params = {
        "clean": {
            "matching": {
                "minhash": {"permutations": permutations, "rows_per_band": rows}
            }
        }
    }
    files = []
    walls = []
    for code in (source, ROOT / "src"):
        with tempfile.TemporaryDirectory(prefix="belle_same_") as folder:
            result = kedro_run.clean_run(
                {
                    "type": "belle_kedro.datasets.instructions.InstructionFileDataset",
                    "filepath": str(path),
                },
                Path(folder),
                params,
                source=code,
            )
            files.append(
                (result["output"].read_bytes(), result["report_file"].read_bytes())
            )
            walls.append(result["wall"])
    (old_data, old_report), (new_data, new_report) = files
    return (
        f"`clean` over {path.name} at {permutations} / {rows}: {source} vs this tree",
        f"clean_instructions identical bytes: {old_data == new_data} "
        f"({len(new_data):,} B); clean_report {same_report(old_report, new_report)}; "
        f"{walls[0]:.0f} s vs {walls[1]:.0f} s",
        "identical bytes",
    )


def same_report(old: bytes, new: bytes) -> str:
    """Whether two ``clean_report`` files are the same bytes; if not, whether the newer
    one is the older plus sections added since (written as the catalog writes JSON)."""
    if old == new:
        return "identical bytes: True"
    earlier, later = json.loads(old), json.loads(new)
    added = [key for key in later if key not in earlier]
    kept = {key: value for key, value in later.items() if key in earlier}
    shared = json.dumps(kept, ensure_ascii=False, indent=2).encode() == old
    return (
        f"identical bytes: False; without the sections added since ({', '.join(added)})"
        f" identical bytes: {shared}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument(
        "--ray-sizes", type=int, nargs="*", default=[1_000_000, 10_000_000]
    )
    parser.add_argument("--same-as", type=Path, help="src/ of a baseline checkout")
    parser.add_argument("--same-size", type=int, default=1_000_000)
    parser.add_argument(
        "--same-minhash",
        type=int,
        nargs=2,
        default=[1200, 6],
        metavar=("PERMUTATIONS", "ROWS"),
    )
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument(
        "--skip-stages", action="store_true", help="no split / token cache rows"
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "belle_scale"
    )
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent")
        return
    command = " ".join(["python bench/scale.py", *sys.argv[1:]])
    load_at_start = machine.load_average()
    start = time.perf_counter()
    rows = []
    local: dict[int, dict] = {}
    for size in args.sizes:
        local[size] = result = run(corpus(size, args.workdir), "local")
        rows.append(
            (
                f"{size:,} distinct records through `clean`, engine local",
                f"{result['wall']:.0f} s wall, peak RSS {result['rss_gib']:.2f} GiB; "
                f"kept {result['out']:,} ({result['out'] / result['in']:.1%}); "
                f"near-dup drops {result['near']:,}; {decision(result)}",
                "10M: <= 1800 s, <= 12 GiB",
            )
        )
    if len(local) == 2:
        small, large = sorted(local)
        exponent = math.log(local[large]["wall"] / local[small]["wall"]) / math.log(
            large / small
        )
        rows.append(
            (f"growth {small:,} -> {large:,}", f"n^{exponent:.2f}", "<= n^1.15")
        )
    if local and not args.skip_stages:
        rows.extend(stage_rows(local[max(local)]["kept"]))
    if not args.skip_ray:
        rows.extend(
            ray_row(corpus(size, args.workdir), local) for size in args.ray_sizes
        )
    if args.same_as:
        rows.append(
            same_outputs(
                corpus(args.same_size, args.workdir), args.same_as, args.same_minhash
            )
        )
    minutes, seconds = divmod(round(time.perf_counter() - start), 60)
    machine.print_table(
        command, load_at_start, f"seed {SEED}; {minutes} min {seconds} s in all", rows
    )


def decision(result: dict) -> str:
    """The driver's time and memory in the near-duplicate decision."""
    window = result["decision"]
    if window is None:
        return "decision: not in the log"
    return (
        f"decision {window['seconds']:.1f} s, driver RSS {window['peak_gib']:.2f} GiB "
        f"({window['before_gib']:.2f} GiB before it)"
    )


def ray_row(path: Path, local: dict[int, dict]) -> tuple[str, str, str]:
    """The Ray route over ``path``: wall, kept, the biggest per-process peaks."""
    size = int(path.name.split("_")[1])
    label = f"{size:,} records, engine ray (local Ray, {os.cpu_count()} CPUs)"
    try:
        on_ray = run(path, "ray")
    except RuntimeError as error:
        return label, f"failed: {str(error)[-400:]}", "same kept set as local"
    same = size in local and pd.read_parquet(on_ray["kept"]).equals(
        pd.read_parquet(local[size]["kept"])
    )
    biggest = sorted(on_ray["peaks"].items(), key=lambda item: -item[1])[:6]
    return (
        label,
        f"{on_ray['wall']:.0f} s wall; kept {on_ray['out']:,}"
        + (f"; same kept records as local: {same}" if size in local else "")
        + f"; {decision(on_ray)}; peaks: "
        + ", ".join(f"{label} {gib:.2f} GiB" for label, gib in biggest),
        "same kept set as local",
    )


if __name__ == "__main__":
    main()
