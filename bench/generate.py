"""Generation throughput: this pipeline's concurrent runner vs a sequential loop.

Both talk to the same loopback OpenAI server (tests/support/openai_server.py) with a
fixed latency per request, so the figures measure the client, not a model. BELLE's
script sends one request at a time; ours keeps ``max_in_flight`` requests outstanding.

    python bench/generate.py [--latency 0.5] [--in-flight 64] [--requests 1920]
                             [--warmup 64] [--sequential 10]

Prints instructions/s for both, their ratio, and the concurrent run's share of the
server-bound limit (in-flight / latency requests per second). Goals: >= 30x and >= 90%.
The timed concurrent run is the generate nodes end to end (request planning, journal,
parsing) after an untimed warm-up batch (imports, connection pool); 1,920 requests are
30 waves of 64, so one wave of ramp-up and ramp-down weighs little.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from belle_kedro.datasets.seed_tasks import load_seed_tasks  # noqa: E402
from belle_kedro.llm.factory import build_backend  # noqa: E402
from belle_kedro.llm.journal import ResponseJournal  # noqa: E402
from belle_kedro.llm.runner import journal_record  # noqa: E402
from belle_kedro.pipelines.generate.nodes import parse_responses, request_responses  # noqa: E402
from belle_kedro.pipelines.generate.self_instruct import build_request, parse_tasks  # noqa: E402
from tests.support.loopback import belle_reply  # noqa: E402
from tests.support.openai_server import FakeOpenAIServer  # noqa: E402

TASKS_PER_ANSWER = 3


def params_for(base_url: str, requests: int, in_flight: int) -> dict:
    params = yaml.safe_load(
        (ROOT / "conf/base/parameters_generate.yml").read_text("utf-8")
    )["generate"]
    params["llm"] = {  # base keys kept: the backend config names every key
        **params["llm"],
        "backend": "openai",
        "api": "chat",
        "model": "bench",
        "base_url": base_url,
        "timeout_s": 30,
        "max_retries": 3,
    }
    params.update(
        num_instructions_to_generate=requests * TASKS_PER_ANSWER,
        max_requests=requests,
        max_in_flight=in_flight,
        tasks_per_request=TASKS_PER_ANSWER,
    )
    return params


def sequential(base_url: str, count: int, workdir: Path, seeds, prompts) -> float:
    """BELLE's way: one request, wait, parse, next. Returns instructions/s."""
    params = params_for(base_url, count, 1)
    backend = build_backend(params["llm"], {"api_key": "bench"}, "generate.llm")
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
                sampling=params["sampling"],
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
    base_url: str, count: int, *, in_flight: int, workdir: Path, seeds, prompts
) -> tuple[float, int]:
    """The generate nodes end to end (requests, journal, parsing). Returns (instr/s, rows)."""
    params = params_for(base_url, count, in_flight)
    journal = ResponseJournal(workdir / "concurrent.jsonl")
    start = time.perf_counter()
    summary = request_responses(seeds, prompts, journal, {"api_key": "bench"}, params)
    rows = parse_responses(journal, summary, params)
    return len(rows) / (time.perf_counter() - start), len(rows)


def _serve(latency: float, connection) -> None:
    """Child process: the loopback server, so it does not share the client's GIL."""
    with FakeOpenAIServer(belle_reply, latency_s=latency) as server:
        connection.send(server.base_url)
        connection.recv()  # "peak?"
        connection.send(server.max_in_flight_seen)
        connection.recv()  # "stop"


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
    args = parser.parse_args()
    seeds = load_seed_tasks(ROOT / "data/01_raw/zh_seed_tasks.json")
    prompts = yaml.safe_load(
        (ROOT / "conf/base/prompts/self_instruct.yml").read_text("utf-8")
    )
    # The server runs in a child process so it does not compete for the client's GIL.
    here, there = multiprocessing.Pipe()
    server = multiprocessing.Process(
        target=_serve, args=(args.latency, there), daemon=True
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
    here.send("peak?")
    peak = (
        here.recv()
    )  # the sequential run never exceeds 1, so this is the concurrent peak
    here.send("stop")
    server.join(timeout=10)
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


if __name__ == "__main__":
    main()
