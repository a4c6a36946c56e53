"""clean.engine: ray joins a cluster of two Ray nodes named by RAY_ADDRESS.

Its own module: ``test_engine``'s module-wide local Ray would be reused instead."""

from __future__ import annotations

import time

import pytest

from belle_kedro.pipelines.clean import dedup
from belle_kedro.pipelines.clean.engine import engine_session
from tests.pipelines.clean.test_dedup import MINHASH, builtin_fixture, distinct_fixture

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")


def node_of(block: int, shared: None) -> str:
    time.sleep(0.5)  # long enough that both nodes' single CPUs take tasks
    return ray.get_runtime_context().get_node_id()


@pytest.mark.slow
def test_a_pass_joins_the_two_node_cluster_ray_address_names(monkeypatch):
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        monkeypatch.setenv("RAY_ADDRESS", cluster.address)
        with engine_session("ray", 2) as runner:
            nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
            assert len(nodes) == 2
            assert set(runner.map(node_of, list(range(8)), None)) == nodes
        # It joined the cluster, so it leaves it; the cluster itself goes on.
        assert not ray.is_initialized()
        keys = dedup.comparison_keys(distinct_fixture(5_000) + builtin_fixture(500))
        local = dedup.find_near_duplicates(
            keys, [], threshold=0.7, minhash=MINHASH, workers=1
        )
        on_cluster = dedup.find_near_duplicates(
            keys, [], threshold=0.7, minhash=MINHASH, workers=2, engine="ray"
        )
        assert (~local.keep).sum() > 100
        assert on_cluster.keep.tolist() == local.keep.tolist()
        assert on_cluster.duplicate_of.tolist() == local.duplicate_of.tolist()
    finally:
        cluster.shutdown()
