"""VariantChildRunHook: one nested child run per variant, active while its nodes run and save."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import pytest
from kedro.pipeline import Node, Pipeline
from mlflow.tracking import MlflowClient

from belle_kedro.hooks.liveness import RunLivenessHook
from belle_kedro.hooks.mlflow_runs import VariantChildRunHook, variant_of
from tests.support.project import base_parameters


def liveness_hook() -> RunLivenessHook:
    """The hook as a session sets it up: conf/base's tracking block."""
    hook = RunLivenessHook()
    hook.after_context_created(
        context=SimpleNamespace(params={"tracking": base_parameters("tracking")})
    )
    return hook


def identity(value):
    return value


def nodes_of(namespace: str | None, outputs: list[str]) -> Node:
    pipeline = Pipeline(
        [Node(identity, "x", outputs[0] if len(outputs) == 1 else outputs, name="step")]
    )
    if namespace:
        pipeline = Pipeline(pipeline, namespace=namespace, inputs={"x"})
    return next(iter(pipeline.nodes))


def active_run_id() -> str:
    """The id of MLflow's active run, which the test expects there to be."""
    run = mlflow.active_run()
    assert run is not None
    return run.info.run_id


def run_node(hook: VariantChildRunHook, node: Node, log: dict[str, float]) -> str:
    """Drive the hook as Kedro's runner does; returns the run id active while outputs save."""
    hook.before_node_run(node=node)
    mlflow.log_metrics(log)
    hook.after_node_run(node=node)
    active_during_save: list[str] = []
    for output in sorted(node.outputs):
        active_during_save.append(active_run_id())
        hook.after_dataset_saved(dataset_name=output, node=node)
    assert len(set(active_during_save)) == 1
    return active_during_save[0]


@pytest.mark.slow
def test_each_variant_gets_one_nested_child_reused_across_its_nodes(mlflow_store):
    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("hook-test")
    hook = VariantChildRunHook()
    with mlflow.start_run(run_name="kedro-run") as parent:
        hook.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
        assert (
            run_node(hook, nodes_of(None, ["pool"]), {"global_metric": 1})
            == parent.info.run_id
        )
        small_train = run_node(
            hook, nodes_of("small", ["trained", "lineage"]), {"train_step": 1}
        )
        assert active_run_id() == parent.info.run_id  # closed after the last save
        medium_train = run_node(
            hook, nodes_of("medium", ["trained"]), {"train_step": 2}
        )
        small_eval = run_node(
            hook, nodes_of("small.evaluate", ["answers"]), {"eval_step": 3}
        )
        hook.after_pipeline_run()
        assert mlflow.active_run() is None  # the parent too: this "session" opened it

    assert small_train == small_eval != medium_train
    client = MlflowClient()
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert sorted(run.info.run_name for run in children) == ["medium", "small"]
    small = client.get_run(small_train)
    assert small.data.metrics == {"train_step": 1.0, "eval_step": 3.0}
    assert small.data.tags["belle.variant"] == "small"
    assert small.info.status == "FINISHED"
    assert client.get_run(parent.info.run_id).data.metrics == {"global_metric": 1.0}


def test_a_failing_node_marks_its_child_failed(mlflow_store):
    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("hook-test")
    hook = VariantChildRunHook()
    node = nodes_of("large", ["trained"])
    with mlflow.start_run() as parent:
        hook.before_node_run(node=node)
        child = active_run_id()
        hook.on_node_error(node=node)
        assert active_run_id() == parent.info.run_id
    assert MlflowClient().get_run(child).info.status == "FAILED"


def test_without_a_parent_run_the_hook_stays_out_of_the_way(mlflow_store):
    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("hook-test")
    hook = VariantChildRunHook()
    node = nodes_of("small", ["trained"])
    hook.before_node_run(node=node)
    assert mlflow.active_run() is None
    assert variant_of(node) == "small"
    assert variant_of(nodes_of(None, ["y"])) is None


@pytest.mark.slow
def test_leftover_copies_of_the_parent_are_dropped_after_the_run(mlflow_store):
    """kedro-mlflow re-pushes the parent before every node and ends it once; none may linger."""
    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("hook-test")
    hook = VariantChildRunHook()
    hook.after_context_created(context=None)
    parent = mlflow.start_run(
        run_name="kedro-run"
    )  # kedro-mlflow's before_pipeline_run
    hook.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
    for namespace in ("small", None):
        mlflow.start_run(
            run_id=parent.info.run_id, nested=True
        )  # kedro-mlflow's before_node_run
        run_node(hook, nodes_of(namespace, ["out"]), {"m": 1})
    mlflow.end_run()  # kedro-mlflow's after_pipeline_run ends one copy
    assert active_run_id() == parent.info.run_id
    hook.after_pipeline_run()
    assert mlflow.active_run() is None
    assert MlflowClient().get_run(parent.info.run_id).info.status == "FINISHED"


def test_a_run_opened_by_the_caller_is_left_open(mlflow_store):
    mlflow.set_tracking_uri(mlflow_store)
    mlflow.set_experiment("hook-test")
    with mlflow.start_run() as callers_run:
        hook = VariantChildRunHook()
        hook.after_context_created(context=None)
        hook.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
        hook.after_pipeline_run()
        assert active_run_id() == callers_run.info.run_id


_KILLED_KEDRO_RUN = """
import os, signal, sys, mlflow
from belle_kedro.hooks.liveness import owner_tags
from belle_kedro.hooks.mlflow_runs import VARIANT_TAG
mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("hook-test")
mlflow.start_run(run_name="kedro-run", tags=owner_tags())
mlflow.start_run(run_name="small", nested=True, tags={VARIANT_TAG: "small", **owner_tags()})
os.kill(os.getpid(), signal.SIGKILL)  # as a kill -9 of `kedro run` mid-node
"""


@pytest.mark.slow
def test_the_next_run_marks_the_runs_of_a_killed_process_killed(mlflow_store):
    import subprocess
    import sys

    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_KEDRO_RUN, mlflow_store], check=False
    )
    assert killed.returncode == -9
    mlflow.set_tracking_uri(mlflow_store)
    experiment = mlflow.set_experiment("hook-test")
    client = MlflowClient()
    orphans = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.status for run in orphans) == ["RUNNING", "RUNNING"]
    # A run another live process owns (here: an untagged one) is left alone.
    other = client.create_run(experiment.experiment_id, run_name="someone else's")

    hook = liveness_hook()
    with mlflow.start_run(run_name="next kedro run") as parent:
        hook.before_pipeline_run(run_params={}, pipeline=None, catalog=None)
        hook.after_pipeline_run()
        assert client.get_run(parent.info.run_id).info.status == "RUNNING"
    for run in orphans:
        assert client.get_run(run.info.run_id).info.status == "KILLED"
    assert client.get_run(other.info.run_id).info.status == "RUNNING"
