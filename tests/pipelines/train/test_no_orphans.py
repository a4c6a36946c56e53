"""A killed Kedro process leaves no torchrun and no rank behind, and the rerun resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from belle_kedro.pipelines.train import launcher, trainer
from tests.support.project import REPO_ROOT
from tests.support.records import make_records
from tests.support.training import settings_of, tiny_config, with_changes

# The stand-in for `kedro run`: the train node's hand-off, in a process of its own.
KEDRO = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from belle_kedro.pipelines.train import launcher
    launcher.launch(Path(sys.argv[1]))
    """
)


def training_processes(run_dir: Path) -> list[psutil.Process]:
    """Every live process whose command line names the run folder (launcher, ranks)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if str(run_dir) in " ".join(process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


def complete_checkpoints(run_dir: Path) -> list[Path]:
    root = run_dir / trainer.CHECKPOINT_DIR
    return [c for c in root.glob("checkpoint-*") if trainer.checkpoint_is_complete(c)]


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow  # two torchrun launches of a tiny model on CPU (about a minute)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
@pytest.mark.parametrize("kill_with", [signal.SIGKILL, signal.SIGTERM])
def test_killing_kedro_during_training_leaves_no_process_and_the_rerun_resumes(
    tmp_path: Path, kill_with: signal.Signals
):
    config = with_changes(
        tiny_config(eval_strategy="no", save_steps=2, num_train_epochs=40),
        launcher={"command": "torchrun", "nproc_per_node": 2},
    )
    run_dir = launcher.prepare_run_dir(
        "small", make_records(32), make_records(8, seed=1), settings_of(config)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    kedro = subprocess.Popen(
        [sys.executable, "-c", KEDRO, str(run_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Kill once a checkpoint exists: training is under way in both ranks.
        # (Looked at without resumable_checkpoint: it sets aside one being written.)
        assert wait_for(lambda: complete_checkpoints(run_dir), 240), (
            "no checkpoint within 4 minutes"
        )
        workers = training_processes(run_dir)
        assert len(workers) >= 3, workers  # torchrun and its two ranks, at least
        kedro.send_signal(kill_with)
        kedro.wait(timeout=120)
        assert wait_for(lambda: not training_processes(run_dir), 60), (
            f"left running: {[p.cmdline() for p in training_processes(run_dir)]}"
        )
        assert kedro.returncode != 0
    finally:
        for process in training_processes(run_dir):
            process.kill()
        if kedro.poll() is None:
            kedro.kill()
    step = trainer.resumable_checkpoint(run_dir)
    assert step is not None
    # The rerun (back to the short plan, same folder) resumes from that checkpoint.
    result = launcher.launch(run_dir)
    assert result["resumed_from_step"] >= 2
    assert not training_processes(run_dir)
