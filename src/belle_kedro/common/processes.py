"""Child processes tied to this one: they die with it and hear its SIGTERM.

A scheduler stops a job by signalling the process it started (SIGTERM from Kubernetes
or a batch system, SIGKILL from the OOM killer). :func:`run_tied` makes a child (the
training launcher) follow: the kernel sends it SIGTERM when this process dies, however
it dies, and a SIGTERM or SIGINT delivered here is passed on while we wait, so the
launcher stops its ranks cleanly before this process exits.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType

logger = logging.getLogger(__name__)

# prctl(2) option: the signal the kernel sends a process when its parent dies.
PR_SET_PDEATHSIG = 1
# Signals passed on to the child while we wait for it.
FORWARDED = (signal.SIGTERM, signal.SIGINT)
# How long a child may take to stop after a passed-on signal before it is killed.
STOP_GRACE_S = 60.0


def die_with_parent(parent: int, sent: signal.Signals) -> bool:
    """Ask the kernel to send ``sent`` to this process when its parent dies (Linux).

    False when ``parent`` is no longer this process's parent: it died before the
    request took effect, so the caller must stop on its own. Elsewhere than Linux it
    asks nothing and returns True.
    """
    if not sys.platform.startswith("linux"):
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sent, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    return os.getppid() == parent


def exec_tied(parent: int, command: Sequence[str]) -> None:
    """Become ``command``, first asking the kernel for SIGTERM when ``parent`` dies.

    Runs as ``python -m belle_kedro.common.processes <parent pid> <command...>``: the
    request survives ``exec``, and a fresh process is safe where a forked copy of a
    threaded one (``preexec_fn``) is not. Elsewhere than Linux it only execs.
    """
    if not die_with_parent(parent, signal.SIGTERM):
        raise SystemExit(f"parent {parent} gone before {command[0]} started")
    os.execvp(command[0], list(command))


def run_tied(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``command`` until it exits; its exit code. It never outlives this process.

    Raises the signal's usual error (``KeyboardInterrupt`` for SIGINT, ``SystemExit``
    for SIGTERM) after the child stopped, when one was passed on.
    """
    parent = os.getpid()
    process = subprocess.Popen(
        [sys.executable, "-m", __name__, str(parent), *command], env=dict(env)
    )
    received: list[int] = []

    def pass_on(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        logger.warning(
            "%s received: passing it to the launcher (pid %d) and waiting for it",
            signal.Signals(signum).name,
            process.pid,
        )
        process.send_signal(signum)

    # Handlers can only be set from the main thread (a threaded runner's node is not).
    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, pass_on) for s in FORWARDED} if in_main else {}
    try:
        try:
            code = process.wait()
        except BaseException:
            if process.poll() is None:
                process.terminate()
            raise
        finally:
            if process.poll() is None:
                try:
                    process.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        if received[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + received[0])
    return code


if __name__ == "__main__":
    exec_tied(int(sys.argv[1]), sys.argv[2:])
