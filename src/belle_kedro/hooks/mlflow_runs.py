"""One MLflow child run per variant namespace.

kedro-mlflow opens one parent run per ``kedro run``. While a node of namespace
``<variant>`` (or ``<variant>.anything``) runs, and until its last output is saved, this
hook makes a nested child run named after the variant the active run, so everything the
node logs, and every kedro-mlflow dataset it saves, lands in that child. The child is
created on the variant's first node and reused (reopened) for its later nodes, train
and evaluate alike; it is closed again before any other node runs, so the parent is
active whenever Kedro or kedro-mlflow touch it.

Kedro saves a node's outputs *after* ``after_node_run``, so the child stays open until
``after_dataset_saved`` has seen every output.

kedro-mlflow reopens the parent before every node with ``mlflow.start_run(run_id=...)``,
which MLflow 3 pushes onto the active-run stack again even when it is already active.
kedro-mlflow ends it once at the end, so the parent would stay "active" in the process
and the next ``KedroSession`` in it (a notebook, a test) would log into the old run.
After the pipeline this hook therefore pops the leftover copies, unless the run was
opened by the caller before the session (kedro-mlflow then leaves it open on purpose). Runs execute one node at a time
(SequentialRunner); MLflow's active-run stack is per thread, so a parallel runner would
need explicit run ids instead.

Child runs carry their owner's tags (:func:`.liveness.owner_tags`); a killed
``kedro run``'s runs are closed by :mod:`.liveness`.
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

from belle_kedro.hooks.liveness import owner_tags

logger = logging.getLogger(__name__)

VARIANT_TAG = "belle.variant"


def variant_of(node: Node) -> str | None:
    """The variant a node belongs to: the first part of its namespace (None if none)."""
    return node.namespace.split(".", 1)[0] if node.namespace else None


class VariantChildRunHook:
    """Switches to the variant's nested MLflow run around each namespaced node."""

    def __init__(self) -> None:
        self._child_run_ids: dict[str, str] = {}
        self._open_variant: str | None = None
        self._pending_outputs: set[str] = set()
        self._parent_run_id: str | None = None
        self._caller_run_open = False

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._caller_run_open = mlflow.active_run() is not None

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Any, catalog: Any
    ) -> None:
        # Children belong to this kedro run's parent; a new run starts new children.
        self._child_run_ids = {}
        self._open_variant = None
        self._pending_outputs = set()
        # kedro-mlflow's before_pipeline_run has already opened the parent.
        active = mlflow.active_run()
        self._parent_run_id = active.info.run_id if active else None

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        variant = variant_of(node)
        if variant != self._open_variant:
            self._close_child()
        if variant is None or variant == self._open_variant:
            return
        parent = mlflow.active_run()
        if parent is None:  # tracking disabled: nothing to nest under
            return
        run_id = self._child_run_ids.get(variant)
        if run_id is None:
            child = mlflow.start_run(
                run_name=variant,
                nested=True,
                tags={VARIANT_TAG: variant, **owner_tags()},
            )
            self._child_run_ids[variant] = child.info.run_id
        else:
            mlflow.start_run(run_id=run_id, nested=True)
        self._open_variant = variant
        self._pending_outputs = set(node.outputs)

    @hook_impl
    def after_node_run(self, node: Node) -> None:
        if not node.outputs:
            self._close_child()

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, node: Node) -> None:
        self._pending_outputs.discard(dataset_name)
        if not self._pending_outputs:
            self._close_child()

    @hook_impl
    def on_node_error(self, node: Node) -> None:
        self._close_child(status="FAILED")

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._close_child()
        self._drop_leftover_parent("FINISHED")

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._close_child(status="FAILED")
        self._drop_leftover_parent("FAILED")

    def _drop_leftover_parent(self, status: str) -> None:
        if self._caller_run_open or self._parent_run_id is None:
            return
        while (
            active := mlflow.active_run()
        ) is not None and active.info.run_id == self._parent_run_id:
            mlflow.end_run(status=status)

    def _close_child(self, status: str = "FINISHED") -> None:
        if self._open_variant is None:
            return
        active = mlflow.active_run()
        if active is not None and active.info.run_id == self._child_run_ids.get(
            self._open_variant
        ):
            mlflow.end_run(status=status)
        self._open_variant = None
        self._pending_outputs = set()
