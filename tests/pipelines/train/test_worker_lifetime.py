"""Training ranks die with their launcher, so a killed job leaves no rank training on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# A stand-in for torchrun: starts one "rank" in a session of its own (as torchrun's
# subprocess handler does), prints its pid and waits.
LAUNCHER = textwrap.dedent(
    """
    import subprocess, sys, time
    rank = subprocess.Popen(
        [sys.executable, "-c", sys.argv[1]], start_new_session=True,
        stdout=subprocess.PIPE, text=True,
    )
    assert rank.stdout.readline() == "ready\\n"
    print(rank.pid, flush=True)
    time.sleep(120)
    """
)
RANK = textwrap.dedent(
    """
    import time
    if {arm}:
        from belle_kedro.pipelines.train.trainer import die_with_launcher
        die_with_launcher()
    print("ready", flush=True)
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    """Running, not a zombie (an unreaped zombie still answers kill(pid, 0))."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
@pytest.mark.parametrize("arm", [True, False], ids=["die_with_launcher", "without"])
def test_a_rank_dies_when_its_launcher_is_sigkilled(arm):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, RANK.format(arm=arm)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert launcher.stdout is not None
    rank = int(launcher.stdout.readline())
    try:
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 10
        while _alive(rank) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Without the request the rank trains on after the launcher is gone: the bug.
        assert _alive(rank) is not arm
    finally:
        if _alive(rank):
            os.kill(rank, signal.SIGKILL)
