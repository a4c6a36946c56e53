"""``clean`` on a Ray cluster of several nodes, joined through ``RAY_ADDRESS`` (a benchmark).

    python bench/ray_cluster.py                       # 2 nodes x 1 CPU, 100K records
    python bench/ray_cluster.py --nodes 3 --size 1000000

Starts a cluster the way docs/clean.md tells a user to (``ray start --head`` once,
``ray start --address`` for each further node), here every node on this machine, each
with its own raylet and workers. Then runs ``clean`` over bench/scale.py's distinct
corpus twice in fresh Kedro sessions: ``clean.engine: local``, and ``clean.engine: ray``
with ``RAY_ADDRESS`` naming the head. Prints one table: each run's wall time, the
driver's peak RSS and records kept, whether the cluster run kept exactly the local
run's records, and per node the CPU seconds its workers spent and its largest worker's
peak RSS (sampled every 0.5 s). ``ray stop`` at the end stops every Ray process on
this machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import machine  # noqa: E402
from bench.scale import SEED, corpus, run  # noqa: E402

RAY = Path(sys.executable).with_name("ray")
PORT = 6390
SAMPLE_SECONDS = 0.5


def start_cluster(nodes: int, cpus: int) -> None:
    """A head and ``nodes - 1`` more nodes on this machine, ``cpus`` CPUs each."""
    common = [f"--num-cpus={cpus}", "--disable-usage-stats"]
    subprocess.run(
        [str(RAY), "start", "--head", f"--port={PORT}", "--include-dashboard=false"]
        + common,
        check=True,
        capture_output=True,
    )
    for _ in range(nodes - 1):
        subprocess.run(
            [str(RAY), "start", f"--address=127.0.0.1:{PORT}", *common],
            check=True,
            capture_output=True,
        )


def active_nodes(wait_s: float = 60) -> int:
    """How many nodes ``ray status`` lists as active, once it reports any."""
    deadline = time.monotonic() + wait_s
    while True:
        status = subprocess.run(
            [str(RAY), "status", f"--address=127.0.0.1:{PORT}"],
            check=False,
            capture_output=True,
            text=True,
        ).stdout
        if "Active:" in status or time.monotonic() > deadline:
            break
        time.sleep(1)  # the autoscaler's first report comes a few seconds in
    return status.partition("Active:")[2].partition("Pending:")[0].count("node_")


def raylets() -> list[psutil.Process]:
    """Each node's raylet, in the order the nodes started."""
    found = [
        p
        for p in psutil.process_iter(["name", "create_time"])
        if p.info["name"] == "raylet"
    ]
    return sorted(found, key=lambda p: p.info["create_time"])


def sample_workers(
    nodes: list[psutil.Process],
    peaks: list[float],
    cpu: list[float],
    done: threading.Event,
) -> None:
    """Per node: its largest worker's RSS (GiB) and its workers' CPU seconds."""
    seen: list[dict[int, float]] = [{} for _ in nodes]
    while not done.is_set():
        for index, raylet in enumerate(nodes):
            try:
                workers = raylet.children(recursive=True)
            except psutil.Error:
                continue
            for worker in workers:
                try:
                    if not worker.name().startswith("ray::"):
                        continue
                    rss = worker.memory_info().rss / 2**30
                    times = worker.cpu_times()
                except psutil.Error:
                    continue
                peaks[index] = max(peaks[index], rss)
                seen[index][worker.pid] = times.user + times.system
        for index in range(len(nodes)):
            cpu[index] = sum(seen[index].values())
        done.wait(SAMPLE_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "belle_scale"
    )
    args = parser.parse_args()
    command = " ".join(["python bench/ray_cluster.py", *sys.argv[1:]])
    load_at_start = machine.load_average()
    start = time.perf_counter()
    path = corpus(args.size, args.workdir)
    local = run(path, "local")
    start_cluster(args.nodes, args.cpus_per_node)
    try:
        alive = active_nodes()
        nodes = raylets()
        peaks, cpu = [0.0] * len(nodes), [0.0] * len(nodes)
        done = threading.Event()
        sampler = threading.Thread(
            target=sample_workers, args=(nodes, peaks, cpu, done)
        )
        sampler.start()
        os.environ["RAY_ADDRESS"] = f"127.0.0.1:{PORT}"
        try:
            cluster = run(path, "ray")
        finally:
            os.environ.pop("RAY_ADDRESS")
            done.set()
            sampler.join()
    finally:
        subprocess.run([str(RAY), "stop"], check=False, capture_output=True)
    same = pd.read_parquet(cluster["kept"]).equals(pd.read_parquet(local["kept"]))
    rows = [
        (
            f"{args.size:,} records, engine local",
            f"{local['wall']:.0f} s wall, driver peak RSS {local['rss_gib']:.2f} GiB; "
            f"kept {local['out']:,}",
            "",
        ),
        (
            f"{args.size:,} records, engine ray, RAY_ADDRESS = a {alive}-node cluster "
            f"({args.cpus_per_node} CPU each)",
            f"{cluster['wall']:.0f} s wall, driver peak RSS "
            f"{cluster['peaks']['driver']:.2f} GiB; kept {cluster['out']:,}; "
            f"same kept records as local: {same}",
            "same kept set as local",
        ),
        *(
            (
                f"node {index + 1} of {len(nodes)}" + (" (head)" if index == 0 else ""),
                f"workers' CPU {cpu[index]:.0f} s; largest worker peak RSS "
                f"{peaks[index]:.2f} GiB",
                "every node runs tasks",
            )
            for index in range(len(nodes))
        ),
    ]
    minutes, seconds = divmod(round(time.perf_counter() - start), 60)
    machine.print_table(
        command, load_at_start, f"seed {SEED}; {minutes} min {seconds} s in all", rows
    )


if __name__ == "__main__":
    main()
