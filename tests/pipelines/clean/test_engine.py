"""clean.engine: the Ray route keeps exactly the local route's records; dead workers retry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from belle_kedro.pipelines.clean import dedup
from belle_kedro.pipelines.clean.engine import BlockRunner, engine_session
from tests.pipelines.clean.test_dedup import MINHASH, builtin_fixture, distinct_fixture

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray with 2 CPUs for the module (engine_session reuses a running Ray)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_an_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="clean.engine must be one of"):
        BlockRunner("spark", 1)


@pytest.mark.slow
def test_ray_keeps_the_same_records_as_local_with_seeds(local_ray):
    # 100K keys: 90K distinct (one in ten with a one-edit copy) and 10K edits of
    # shared templates; bench/scale.py compares the two routes at 1M and 10M.
    keys = dedup.comparison_keys(distinct_fixture(90_000) + builtin_fixture(10_000))
    seeds = keys[:50:5]
    local = dedup.find_near_duplicates(
        keys, seeds, threshold=0.7, minhash=MINHASH, workers=2
    )
    on_ray = dedup.find_near_duplicates(
        keys, seeds, threshold=0.7, minhash=MINHASH, workers=2, engine="ray"
    )
    assert (~local.keep).sum() > 10_000
    assert on_ray.keep.tolist() == local.keep.tolist()
    assert on_ray.duplicate_of.tolist() == local.duplicate_of.tolist()
    assert on_ray.candidates == local.candidates
    reference = dedup.find_reference_matches(
        keys,
        seeds,
        threshold=0.7,
        minhash=MINHASH,
        workers=2,
        progress=None,
        engine="ray",
    )
    assert not reference.keep[:50:5].any()  # every seed matches itself


@pytest.mark.slow
def test_a_dead_ray_worker_is_retried(local_ray, tmp_path: Path):
    marker = tmp_path / "died_once"

    def die_once(block: int, shared: Path) -> int:
        if not shared.exists():
            shared.touch()
            os._exit(1)  # the worker process dies mid-task
        return block * 2

    with engine_session("ray", 2) as runner:
        assert list(runner.map(die_once, [1, 2, 3], marker)) == [2, 4, 6]
    assert marker.exists()


@pytest.mark.slow
def test_a_task_that_keeps_failing_raises_in_the_driver(local_ray):
    def always_dies(block: int, shared: None) -> int:
        os._exit(1)

    with engine_session("ray", 2) as runner:
        with pytest.raises(ray.exceptions.WorkerCrashedError):
            list(runner.map(always_dies, [1], None))
