"""run_tied: the launcher never outlives the Kedro process, and hears its SIGTERM."""

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

ROOT = Path(__file__).resolve().parents[2]

# The stand-in launcher: says when it runs, and on SIGTERM writes a mark and exits 3.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    def stop(signum, frame):
        open(sys.argv[1], "w").write("stopped cleanly")
        raise SystemExit(3)
    signal.signal(signal.SIGTERM, stop)
    print(os.getpid(), flush=True)
    time.sleep(120)
    """
)
# The stand-in Kedro process: runs the launcher through run_tied.
PARENT = textwrap.dedent(
    """
    import sys
    from belle_kedro.common.processes import run_tied
    code = run_tied([sys.executable, "-c", sys.argv[1], sys.argv[2]], dict(__import__("os").environ))
    print("exit", code, flush=True)
    """
)


def start(tmp_path: Path) -> tuple[subprocess.Popen[str], psutil.Process, Path]:
    mark = tmp_path / "mark"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, CHILD, str(mark)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    # The launcher is the tied child itself (exec'd), not a grandchild behind a shim.
    assert child.ppid() == parent.pid
    return parent, child, mark


def gone(process: psutil.Process, within_s: float = 15.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_the_launcher_dies_when_the_kedro_process_is_sigkilled(tmp_path: Path):
    parent, child, mark = start(tmp_path)
    try:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert gone(child), "the launcher outlived the SIGKILLed Kedro process"
        # It got SIGTERM (not SIGKILL), so it could stop its ranks cleanly.
        assert mark.read_text() == "stopped cleanly"
    finally:
        if child.is_running():
            child.kill()


@pytest.mark.slow
def test_a_sigterm_is_passed_on_and_waited_for(tmp_path: Path):
    parent, child, mark = start(tmp_path)
    try:
        os.kill(parent.pid, signal.SIGTERM)
        out, _ = parent.communicate(timeout=30)
        assert parent.returncode == 128 + signal.SIGTERM  # the signal, not success
        assert "exit" not in out
        assert mark.read_text() == "stopped cleanly"
        assert gone(child, within_s=1)
    finally:
        if child.is_running():
            child.kill()
