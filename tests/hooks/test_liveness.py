"""Heartbeats and the sweep: a run from any host whose heartbeat went stale is KILLED."""

from __future__ import annotations

import logging
import math
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from belle_kedro.common.config import ParameterError, build
from belle_kedro.hooks.liveness import (
    HEARTBEAT_TAG,
    HOST_TAG,
    PARENT_TAG,
    PID_TAG,
    Heartbeat,
    TrackingSettings,
    end_dead_runs,
)

DEAD_AFTER_S = 600.0


def make_run(client: MlflowClient, experiment: str, name: str, **tags: str) -> str:
    return client.create_run(experiment, run_name=name, tags=tags).info.run_id


def test_a_stale_heartbeat_from_another_host_is_killed_a_fresh_one_is_not(
    mlflow_store, caplog
):
    mlflow.set_tracking_uri(mlflow_store)
    experiment = mlflow.set_experiment("liveness").experiment_id
    client = MlflowClient()
    now = time.time()
    other = {HOST_TAG: "node-17", PID_TAG: "4242"}  # a host this sweep cannot look at
    stale = make_run(
        client, experiment, "stale", **other, **{HEARTBEAT_TAG: f"{now - 3600:.0f}"}
    )
    stale_child = make_run(
        client, experiment, "stale child", **other, **{PARENT_TAG: stale}
    )
    just_in_time = make_run(
        client,
        experiment,
        "fresh enough",
        **other,
        **{HEARTBEAT_TAG: f"{now - DEAD_AFTER_S + 60:.0f}"},
    )
    fresh = make_run(
        client, experiment, "fresh", **other, **{HEARTBEAT_TAG: f"{now:.0f}"}
    )
    # A live parent keeps its nested run alive, though the child has no beat of its own.
    fresh_child = make_run(
        client, experiment, "fresh child", **other, **{PARENT_TAG: fresh}
    )
    unknown = make_run(client, experiment, "no heartbeat, no owner")
    finished = make_run(
        client, experiment, "finished", **other, **{HEARTBEAT_TAG: f"{now - 3600:.0f}"}
    )
    client.set_terminated(finished, status="FINISHED")

    with caplog.at_level(logging.WARNING):
        killed = end_dead_runs(experiment, DEAD_AFTER_S)

    assert sorted(killed) == sorted([stale, stale_child])
    status = {
        r: client.get_run(r).info.status
        for r in (
            stale,
            stale_child,
            just_in_time,
            fresh,
            fresh_child,
            unknown,
            finished,
        )
    }
    assert status == {
        stale: "KILLED",
        stale_child: "KILLED",
        just_in_time: "RUNNING",
        fresh: "RUNNING",
        fresh_child: "RUNNING",
        unknown: "RUNNING",
        finished: "FINISHED",
    }
    assert f"Marked run {stale} KILLED: no heartbeat from node-17 for 36" in caplog.text


def test_the_heartbeat_thread_moves_the_tag_on_until_stopped(mlflow_store):
    mlflow.set_tracking_uri(mlflow_store)
    experiment = mlflow.set_experiment("liveness").experiment_id
    client = MlflowClient()
    run = make_run(client, experiment, "beating", **{HEARTBEAT_TAG: "1000"})
    started = time.time()
    beat = Heartbeat(run, interval_s=0.1).start()
    try:
        # A generous wait, not a bound: a loaded box may take long to beat once.
        deadline = time.monotonic() + 300
        while client.get_run(run).data.tags[HEARTBEAT_TAG] == "1000":
            assert time.monotonic() < deadline, "no heartbeat within 300 s"
            time.sleep(0.05)
    finally:
        beat.stop()
    # Event order, not a wall-clock bound: the beat was stamped while it ran.
    stamp = float(client.get_run(run).data.tags[HEARTBEAT_TAG])  # whole seconds
    assert math.floor(started) <= stamp <= math.ceil(time.time())
    assert not beat._thread.is_alive()
    assert end_dead_runs(experiment, DEAD_AFTER_S) == []


def test_a_timeout_a_live_run_could_miss_is_refused():
    with pytest.raises(ParameterError, match="dead_after_s must be at least 3 x"):
        build(
            TrackingSettings,
            {"heartbeat_interval_s": 60, "dead_after_s": 100},
            "tracking",
        )
