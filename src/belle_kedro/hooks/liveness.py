"""Runs that prove they are alive, and a sweep that closes the ones that stopped.

A killed ``kedro run`` (SIGKILL, OOM, a lost node) cannot end its MLflow runs. While a
run executes, a daemon thread stamps its parent run's :data:`HEARTBEAT_TAG` (Unix
seconds) every ``tracking.heartbeat_interval_s``. When the next ``kedro run`` starts,
:func:`end_dead_runs` marks KILLED every RUNNING run of the experiment that is dead:
its heartbeat (a nested run's is its parent's) is older than ``tracking.dead_after_s``,
whichever host it ran on, or its owning process on this host is gone. It logs each one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from mlflow.tracking import MlflowClient

from belle_kedro.common.config import InvalidSetting, Settings, build, setting

logger = logging.getLogger(__name__)

# The process that owns a run while it is RUNNING: host name and pid.
HOST_TAG = "belle.host"
PID_TAG = "belle.pid"
# The last moment (Unix seconds) the owning process was seen alive.
HEARTBEAT_TAG = "belle.heartbeat"
PARENT_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class TrackingSettings(Settings):
    """The ``tracking`` block: how runs prove they are alive."""

    heartbeat_interval_s: float = setting("seconds between two heartbeats of a run")
    dead_after_s: float = setting(
        "a RUNNING run whose heartbeat is older than this is marked KILLED (any host)"
    )

    def check(self) -> None:
        """A live run must never look dead: several beats fit in ``dead_after_s``."""
        if self.heartbeat_interval_s <= 0:
            raise InvalidSetting("heartbeat_interval_s", "must be > 0")
        if self.dead_after_s < 3 * self.heartbeat_interval_s:
            raise InvalidSetting(
                "dead_after_s", "must be at least 3 x heartbeat_interval_s"
            )


def owner_tags() -> dict[str, str]:
    """Tags naming this process as the owner of a run (its heartbeat is the parent's)."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _heartbeat(tags: dict[str, str]) -> float | None:
    value = tags.get(HEARTBEAT_TAG, "")
    try:
        return float(value)
    except ValueError:
        return None


def dead_reason(
    tags: dict[str, str], heartbeat: float | None, dead_after_s: float, now: float
) -> str | None:
    """Why a RUNNING run with ``tags`` and ``heartbeat`` is dead, or None if it may live."""
    if heartbeat is not None and now - heartbeat > dead_after_s:
        host = tags.get(HOST_TAG, "an unknown host")
        return f"no heartbeat from {host} for {now - heartbeat:.0f} s"
    pid = tags.get(PID_TAG, "")
    if tags.get(HOST_TAG) == socket.gethostname() and pid.isdigit():
        if int(pid) != os.getpid() and not _process_alive(int(pid)):
            return f"its kedro process {pid} on this host is gone"
    return None


def end_dead_runs(
    experiment_id: str, dead_after_s: float, client: MlflowClient | None = None
) -> list[str]:
    """Mark KILLED the experiment's RUNNING runs that are dead; their ids.

    A run with no heartbeat and no owner on this host is left alone (it may be live).
    """
    client = client or MlflowClient()
    running = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'"
    )
    beats = {run.info.run_id: _heartbeat(run.data.tags) for run in running}
    now = time.time()
    killed = []
    for run in running:
        tags = run.data.tags
        # A nested run lives as long as its parent beats.
        heartbeat = beats.get(tags.get(PARENT_TAG, ""), beats[run.info.run_id])
        reason = dead_reason(tags, heartbeat, dead_after_s, now)
        if reason is None:
            continue
        client.set_terminated(run.info.run_id, status="KILLED")
        logger.warning("Marked run %s KILLED: %s", run.info.run_id, reason)
        killed.append(run.info.run_id)
    return killed


class Heartbeat:
    """A daemon thread stamping one run's heartbeat tag until stopped."""

    def __init__(self, run_id: str, interval_s: float):
        self.run_id = run_id
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{run_id[:8]}", daemon=True
        )

    def start(self) -> Heartbeat:
        """Beat now and every interval after."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (the run ends; its last beat stays)."""
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)

    def _beat(self) -> None:
        client = MlflowClient()
        while not self._stop.is_set():
            try:
                client.set_tag(self.run_id, HEARTBEAT_TAG, f"{time.time():.0f}")
            except Exception as problem:  # a tracking hiccup must not stop the run
                logger.warning("heartbeat of run %s failed: %s", self.run_id, problem)
            self._stop.wait(self.interval_s)


class RunLivenessHook:
    """Tags the ``kedro run``'s parent run with its owner, closes dead runs, beats."""

    def __init__(self) -> None:
        self._settings: TrackingSettings | None = None
        self._heartbeat: Heartbeat | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._settings = build(
            TrackingSettings, context.params.get("tracking"), "tracking"
        )

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Any, catalog: Any
    ) -> None:
        # kedro-mlflow's before_pipeline_run has already opened the parent.
        active = mlflow.active_run()
        if active is None or self._settings is None:
            return
        mlflow.set_tags(owner_tags())
        end_dead_runs(active.info.experiment_id, self._settings.dead_after_s)
        self._heartbeat = Heartbeat(
            active.info.run_id, self._settings.heartbeat_interval_s
        ).start()

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._stop()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
