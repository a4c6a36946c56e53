"""Generation: the concurrent runner vs a sequential loop, then ``api: chat`` vs ``batch``.

Everything talks to the same loopback OpenAI server (tests/support/openai_server.py, in
a child process) with a fixed latency per request, so the figures measure the client,
not a model. BELLE's script sends one request at a time; ours keeps ``max_in_flight``
requests outstanding.

    python bench/generate.py [--latency 0.5] [--in-flight 64] [--requests 1920]
                             [--warmup 64] [--sequential 10] [--kills 5]

Part 1 prints instructions/s for both, their ratio, and the concurrent run's share of
the server-bound limit (in-flight / latency requests per second). Goals: >= 30x and
>= 90%. The timed concurrent run is the generate nodes end to end (request planning,
journal, parsing) after an untimed warm-up batch (imports, connection pool); 1,920
requests are 30 waves of 64, so one wave of ramp-up and ramp-down weighs little.

Part 2 runs the same ``--requests`` plan with ``api: chat`` (``--in-flight``) and with
``api: batch`` (the loopback Batch API: one state per ``--batch-polls`` polls), each
uninterrupted (wall time, cost estimate at gpt-4o-mini list prices, batch at half),
then again in a child process SIGKILLed ``--kills`` times at random moments of its run
and rerun to the end: the requests the server answered twice (paid twice; goal for
batch: 0) and whether the output equals the uninterrupted run's. The loopback batch
finishes in seconds; a real one takes up to 24 h, so its wall time says little.

A last row runs the batch plan once more against a server that fails one first try in
``--fault-every`` with an error line and expires another (the batch ends ``expired``):
the follow-up batches of that one run answer them all, so its output equals the
uninterrupted run's and nothing is paid twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from belle_kedro.common.config import build  # noqa: E402
from belle_kedro.datasets.seed_tasks import load_seed_tasks  # noqa: E402
from belle_kedro.llm.client import open_client  # noqa: E402
from belle_kedro.llm.journal import ResponseJournal  # noqa: E402
from belle_kedro.llm.runner import journal_record  # noqa: E402
from belle_kedro.pipelines.generate.nodes import parse_responses, request_responses  # noqa: E402
from belle_kedro.pipelines.generate.self_instruct import build_request, parse_tasks  # noqa: E402
from belle_kedro.pipelines.generate.settings import GenerateSettings  # noqa: E402
from bench import machine  # noqa: E402
from tests.support.loopback import belle_reply  # noqa: E402
from tests.support.openai_server import FakeOpenAIServer  # noqa: E402

TASKS_PER_ANSWER = 3


def first_try_faults(every: int) -> Callable[[str, int], str | None]:
    """Loopback batch faults: of every ``every`` first tries, one errors, one expires."""

    def faults(custom_id: str, attempt: int) -> str | None:
        index = int(custom_id.split("-")[2])  # gen-<seed>-<index>-<digest>
        if attempt > 1:
            return None
        return {0: "error", 1: "expire"}.get(index % every)

    return faults


# USD per 1K tokens, gpt-4o-mini's list prices when written (the batch pays half).
PRICES = {"prompt": 0.00015, "completion": 0.0006}
# conf/base/prompts/self_instruct.yml: template name -> its parts.
Prompts = dict[str, dict[str, str]]


def params_for(
    base_url: str,
    requests: int,
    in_flight: int,
    api: str = "chat",
    polls_s: float = 0.2,
) -> dict:
    params = yaml.safe_load(
        (ROOT / "conf/base/parameters_generate.yml").read_text("utf-8")
    )["generate"]
    params["llm"] |= {"backend": "openai", "api": api, "model": "bench"}
    openai = params["llm"]["openai"]
    openai |= {"base_url": base_url, "timeout_s": 30, "max_retries": 3}
    openai["batch"] |= {"poll_interval_s": polls_s, "poll_max_interval_s": polls_s}
    params.update(
        num_instructions_to_generate=requests * TASKS_PER_ANSWER,
        max_requests=requests,
        max_in_flight=in_flight,
        tasks_per_request=TASKS_PER_ANSWER,
        price_per_1k_tokens=PRICES,
    )
    return params


def sequential(
    base_url: str, count: int, workdir: Path, seeds: pd.DataFrame, prompts: Prompts
) -> float:
    """BELLE's way: one request, wait, parse, next. Returns instructions/s."""
    params = params_for(base_url, count, 1)
    settings = build(GenerateSettings, params, "generate")
    backend = open_client(settings.llm, {"api_key": "bench"}, "generate.llm").backend
    journal = ResponseJournal(workdir / "sequential.jsonl")

    async def loop() -> int:
        parsed = 0
        for index in range(count):
            request = build_request(
                seeds,
                index,
                random_seed=1,
                few_shot_k=3,
                num_tasks=TASKS_PER_ANSWER,
                template=prompts["chat"],
                sampling=settings.sampling,
                model=backend.model,
            )
            response = await backend.complete(request)
            journal.append(journal_record(request, response, backend.api))
            parsed += len(parse_tasks(response.text, response.finish_reason))
        await backend.aclose()
        return parsed

    start = time.perf_counter()
    parsed = asyncio.run(loop())
    return parsed / (time.perf_counter() - start)


def concurrent(
    base_url: str,
    count: int,
    *,
    in_flight: int,
    workdir: Path,
    seeds: pd.DataFrame,
    prompts: Prompts,
) -> tuple[float, int]:
    """The generate nodes end to end (requests, journal, parsing). Returns (instr/s, rows)."""
    params = params_for(base_url, count, in_flight)
    journal = ResponseJournal(workdir / "concurrent.jsonl")
    start = time.perf_counter()
    summary = request_responses(seeds, prompts, journal, {"api_key": "bench"}, params)
    rows = parse_responses(journal, summary, params)
    return len(rows) / (time.perf_counter() - start), len(rows)


def _serve(latency: float, polls_per_state: int, connection: Connection) -> None:
    """Child process: the loopback server, so it does not share the client's GIL."""
    with FakeOpenAIServer(
        belle_reply, latency_s=latency, polls_per_state=polls_per_state
    ) as server:
        connection.send(server.base_url)
        while (command := connection.recv()) != "stop":
            with server._lock:
                if command == "stats":
                    answered = Counter(r["client_request_id"] for r in server.requests)
                    connection.send(
                        {
                            "peak": server.max_in_flight_seen,
                            "chat_paid_twice": sum(n > 1 for n in answered.values()),
                            "batch_paid_twice": sum(
                                n > 1 for n in server.batch_paid.values()
                            ),
                        }
                    )
                elif isinstance(command, tuple):  # ("faults", every or 0)
                    every = command[1]
                    server.batch_faults = first_try_faults(every) if every else None
                    connection.send(None)
                else:  # "reset": count the next phase from zero
                    server.requests.clear()
                    server.batch_paid.clear()
                    # A fault's try count starts again (it counts submissions).
                    server.batch_submissions.clear()
                    server.max_in_flight_seen = 0
                    connection.send(None)


def _child(
    api: str, workdir: str, base_url: str, requests: int, in_flight: int
) -> None:
    """``--child``: one generate run into ``workdir`` (the process the bench kills)."""
    params = params_for(base_url, requests, in_flight, api)
    seeds = load_seed_tasks(ROOT / "data/01_raw/zh_seed_tasks.json")
    prompts = yaml.safe_load(
        (ROOT / "conf/base/prompts/self_instruct.yml").read_text("utf-8")
    )
    journal = ResponseJournal(Path(workdir) / "raw_responses.jsonl")
    print("started", flush=True)
    summary = request_responses(seeds, prompts, journal, {"api_key": "bench"}, params)
    rows = parse_responses(journal, summary, params)
    rows.to_parquet(Path(workdir) / "generated.parquet")
    (Path(workdir) / "summary.json").write_text(json.dumps(summary), "utf-8")


def _run_child(
    api: str,
    workdir: Path,
    base_url: str,
    args: argparse.Namespace,
    kill_after_s: float | None,
) -> float:
    """Run ``_child``; SIGKILL it ``kill_after_s`` after it starts (None: to the end)."""
    command = [sys.executable, __file__, "--child", api, str(workdir), base_url]
    command += ["--requests", str(args.requests), "--in-flight", str(args.in_flight)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=os.environ
    )
    assert process.stdout is not None
    process.stdout.readline()  # "started": imports done, the node begins
    started = time.perf_counter()
    if kill_after_s is None:
        process.wait()
        return time.perf_counter() - started
    try:
        process.wait(timeout=kill_after_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return time.perf_counter() - started


def compare_apis(
    base_url: str, connection: Connection, args: argparse.Namespace, workdir: Path
) -> list[str]:
    """Part 2: chat vs batch on one plan: wall time, paid twice after kills, cost."""
    rng = random.Random(5)
    rows = []
    for api in ("chat", "batch"):
        clean, killed = workdir / f"{api}-clean", workdir / f"{api}-killed"
        clean.mkdir()
        killed.mkdir()
        wall = _run_child(api, clean, base_url, args, None)
        summary = json.loads((clean / "summary.json").read_text("utf-8"))
        connection.send("reset")
        connection.recv()
        moments = [rng.uniform(0.05, 0.95) * wall for _ in range(args.kills)]
        for moment in moments:
            _run_child(api, killed, base_url, args, moment)
        _run_child(api, killed, base_url, args, None)
        connection.send("stats")
        stats = connection.recv()

        same = pd.read_parquet(clean / "generated.parquet").equals(
            pd.read_parquet(killed / "generated.parquet")
        )
        paid_twice = stats[f"{api}_paid_twice"]
        rows.append(
            f"{api:<6}| {wall:6.1f} s | {paid_twice:>6} of {args.requests:<6} | "
            f"{'yes' if same else 'NO':<4} | ${summary['cost_estimate']:.4f}"
        )
        shutil.rmtree(killed)
    rows.append(faulted_batch_row(base_url, connection, args, workdir))
    return rows


def faulted_batch_row(
    base_url: str, connection: Connection, args: argparse.Namespace, workdir: Path
) -> str:
    """The batch plan once, against failed and expired first tries: one run answers all."""
    faulted = workdir / "batch-faulted"
    faulted.mkdir()
    for command in ("reset", ("faults", args.fault_every)):
        connection.send(command)
        connection.recv()
    wall = _run_child("batch", faulted, base_url, args, None)
    connection.send("stats")
    stats = connection.recv()
    connection.send(("faults", 0))
    connection.recv()
    summary = json.loads((faulted / "summary.json").read_text("utf-8"))
    batch = summary["batch"]
    same = pd.read_parquet(workdir / "batch-clean" / "generated.parquet").equals(
        pd.read_parquet(faulted / "generated.parquet")
    )
    return (
        f"batch, {batch['items_resubmitted']} items failed or expired, "
        f"{batch['batch_states'].get('expired', 0)} batches expired, "
        f"{batch['follow_up_batches']} follow-up batches, one run | {wall:6.1f} s | "
        f"{stats['batch_paid_twice']:>6} of {args.requests:<6} | "
        f"{'yes' if same else 'NO':<4} | ${summary['cost_estimate']:.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--requests", type=int, default=1920)
    parser.add_argument(
        "--warmup",
        type=int,
        default=64,
        help="requests sent first and not timed (imports, TLS context, connection pool)",
    )
    parser.add_argument("--sequential", type=int, default=10)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument(
        "--batch-polls", type=int, default=2, help="loopback polls per batch state"
    )
    parser.add_argument(
        "--fault-every",
        type=int,
        default=10,
        help="last row: one first try in N errors and one expires",
    )
    parser.add_argument("--child", nargs=3, metavar=("API", "WORKDIR", "BASE_URL"))
    args = parser.parse_args()
    if args.child:
        api, workdir, base_url = args.child
        _child(api, workdir, base_url, args.requests, args.in_flight)
        return
    # The load average beside the figures says whether other jobs shared the cores.
    load_at_start = machine.load_average()
    seeds = load_seed_tasks(ROOT / "data/01_raw/zh_seed_tasks.json")
    prompts = yaml.safe_load(
        (ROOT / "conf/base/prompts/self_instruct.yml").read_text("utf-8")
    )
    # The server runs in a child process so it does not compete for the client's GIL.
    here, there = multiprocessing.Pipe()
    server = multiprocessing.Process(
        target=_serve, args=(args.latency, args.batch_polls, there), daemon=True
    )
    server.start()
    base_url = here.recv()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        seq_rate = sequential(base_url, args.sequential, workdir, seeds, prompts)
        if args.warmup:
            concurrent(
                base_url,
                args.warmup,
                in_flight=args.in_flight,
                workdir=workdir / "warmup",
                seeds=seeds,
                prompts=prompts,
            )
        conc_rate, rows = concurrent(
            base_url,
            args.requests,
            in_flight=args.in_flight,
            workdir=workdir,
            seeds=seeds,
            prompts=prompts,
        )
        here.send("stats")
        # The sequential run never exceeds 1, so this is the concurrent peak.
        peak = here.recv()["peak"]
        api_rows = compare_apis(base_url, here, args, workdir)
    here.send("stop")
    server.join(timeout=10)
    print(f"command: python bench/generate.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {machine.describe(load_at_start)}")
    bound = args.in_flight / args.latency * TASKS_PER_ANSWER
    print(f"latency {args.latency}s, {TASKS_PER_ANSWER} instructions per answer")
    print(
        f"sequential loop ({args.sequential} requests):          {seq_rate:8.2f} instructions/s"
    )
    print(
        f"this pipeline (max_in_flight={args.in_flight}, {args.requests} requests): {conc_rate:8.2f} instructions/s ({rows} rows, peak in flight {peak})"
    )
    print(
        f"speed-up:                                  {conc_rate / seq_rate:8.1f}x   (goal >= 30x)"
    )
    print(
        f"share of server-bound limit ({bound:.0f}/s):      {conc_rate / bound:8.1%}   (goal >= 90%)"
    )

    print(
        f"\nthe same {args.requests}-request plan: wall time and cost uninterrupted; "
        f"requests paid twice and output equal after {args.kills} SIGKILLs at random "
        "moments and a rerun:"
    )
    print("api   | wall     | paid twice       | same | cost estimate")
    for row in api_rows:
        print(row)
    print(
        "goal: batch pays nothing twice; its cost is half of chat's; with failed and "
        "expired items, one run answers them all, paid once"
    )


if __name__ == "__main__":
    main()
