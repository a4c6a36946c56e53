"""A real small file system (tmpfs) for disk-full tests of writers that bypass Python.

pyarrow, torch and safetensors write from C/C++/Rust, so a patched ``os.write``
(tests/support/disk_full.py) never sees their bytes; a tmpfs fills up for every writer
alike. Mounting needs root (or CAP_SYS_ADMIN): where ``mount`` is refused, as in many
CI containers, the test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

BALLAST = ".ballast"


class SmallDisk:
    """A mounted tmpfs: :meth:`fill` leaves only a few bytes free, :meth:`free` undoes it."""

    def __init__(self, folder: Path):
        self.folder = folder

    def free_bytes(self) -> int:
        stats = os.statvfs(self.folder)
        return stats.f_bavail * stats.f_frsize

    def fill(self, leave: int) -> None:
        """Take all the free space but ``leave`` bytes (a hidden ballast file)."""
        with (self.folder / BALLAST).open("ab") as ballast:
            ballast.write(b"\0" * max(0, self.free_bytes() - leave))

    def free(self) -> None:
        """Space freed: the ballast goes."""
        (self.folder / BALLAST).unlink(missing_ok=True)

    def files(self) -> list[str]:
        """Every file and folder on the disk but the ballast, relative to its root."""
        return sorted(
            str(path.relative_to(self.folder))
            for path in self.folder.rglob("*")
            if path.name != BALLAST
        )


@contextmanager
def small_disk(folder: Path, size: str = "64m") -> Iterator[SmallDisk]:
    """A tmpfs of ``size`` mounted on ``folder`` (made if missing) for the ``with`` body."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            check=False,  # a refusal is a skip, below
        )
    except FileNotFoundError:
        pytest.skip("no mount command here: cannot make a small file system")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield SmallDisk(folder)
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@contextmanager
def project_data_on_small_disk(project: Path, size: str) -> Iterator[SmallDisk]:
    """``project/data`` moved onto a tmpfs of ``size``: the catalog's every relative
    path (journals, checkpoints, the token cache) then lands on the small disk."""
    roomy = project / "data.roomy"
    (project / "data").rename(roomy)
    with small_disk(project / "data", size) as disk:
        shutil.copytree(roomy, disk.folder, dirs_exist_ok=True)
        yield disk


class FillBeforeNode:
    """A Kedro hook: the disk fills (all but ``leave`` bytes) just before ``node`` runs,
    so that node's writes, whichever writer makes them, meet a full disk. Register it on
    a session before ``run`` (``session._hook_manager.register``)."""

    def __init__(self, disk: SmallDisk, node: str, leave: int = 0):
        self.disk, self.node, self.leave = disk, node, leave

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        if node.name == self.node:
            self.disk.fill(leave=self.leave)
