"""Where the clean passes run their block tasks: this machine's processes, or Ray.

``clean.engine: local`` maps a block function over its blocks in worker processes
(``spawn``); ``clean.engine: ray`` runs each block as a Ray task. Ray joins the cluster
named by ``RAY_ADDRESS`` when it is set (``ray://head:10001`` or ``head:6379``), else
starts a local Ray with ``clean.matching.workers`` CPUs (null: every core) and stops it
when the pass ends. A Ray session that the caller already started is used as it is.

A task whose worker dies is retried by Ray (``max_retries``); a task that still fails
raises in the driver, before the node returns, so Kedro never saves a partial output.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar

Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = ("local", "ray")
T = TypeVar("T")
R = TypeVar("R")

RETRIES = 3  # attempts after a worker dies before the pass fails


class BlockRunner:
    """Maps a picklable block function over blocks, in order, on one engine."""

    def __init__(self, engine: str, workers: int) -> None:
        if engine not in ENGINES:
            raise ValueError(f"clean.engine must be one of {ENGINES}, got {engine!r}")
        self.engine = engine
        self.workers = workers

    def map(
        self, function: Callable[[T, Any], R], blocks: Sequence[T], shared: Any
    ) -> Iterator[R]:
        """``function(block, shared)`` for each block, in order.

        ``shared`` is sent to every task once (Ray: one object in the object store).
        """
        if self.engine == "ray":
            yield from _ray_map(function, blocks, shared)
            return
        if self.workers == 1 or len(blocks) <= 1:
            yield from (function(block, shared) for block in blocks)
            return
        # spawn, not fork: the caller may be a Kedro run with MLflow threads alive.
        # ``shared`` goes to each worker once (initializer), not with every block.
        context = multiprocessing.get_context("spawn")
        with context.Pool(
            min(self.workers, len(blocks)),
            initializer=_share,
            initargs=(function, shared),
        ) as pool:
            yield from pool.imap(_call_shared, blocks)


# A pool worker's function and shared argument ("task"), set once when it starts.
_worker: dict[str, tuple[Callable[[Any, Any], Any], Any]] = {}


def _share(function: Callable[[Any, Any], Any], shared: Any) -> None:
    _worker["task"] = (function, shared)


def _call_shared(block: Any) -> Any:
    function, shared = _worker["task"]
    return function(block, shared)


def _ray_task(function: Callable[[Any, Any], Any], block: Any, shared: Any) -> Any:
    return function(block, shared)


def _ray_map(
    function: Callable[[Any, Any], Any], blocks: Sequence[Any], shared: Any
) -> Iterator[Any]:
    import ray

    task = ray.remote(max_retries=RETRIES, retry_exceptions=False)(_ray_task)
    shared_ref = ray.put(shared)
    # At most two tasks a CPU in flight: results stream back in order without every
    # block's output waiting in the object store at once.
    window = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
    pending: list[Any] = []
    for block in blocks:
        pending.append(task.remote(function, block, shared_ref))
        if len(pending) >= window:
            yield ray.get(pending.pop(0))
    while pending:
        yield ray.get(pending.pop(0))


@contextlib.contextmanager
def engine_session(engine: str, workers: int | None) -> Iterator[BlockRunner]:
    """A :class:`BlockRunner`; with Ray, connected for the duration of the block."""
    cores = workers if workers is not None else (os.cpu_count() or 1)
    if engine != "ray":
        yield BlockRunner(engine, cores)
        return
    try:
        import ray
    except ImportError as error:  # the [ray] extra is optional
        raise ValueError(
            "clean.engine is ray but ray is not installed: "
            "pip install 'belle-kedro[ray]'"
        ) from error
    started = False
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=cores, **options)
        started = True
    try:
        yield BlockRunner(engine, cores)
    finally:
        if started:
            ray.shutdown()
