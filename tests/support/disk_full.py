"""A disk that fills up: ``os.write`` to files under one folder fails at the Nth call.

The Nth write to such a file stores half its bytes (a short write, as a filling disk
gives) and the next raises ENOSPC, as does every write after it until :meth:`free`, or
until the file ``freed_by`` names is removed (a journal's reserve: its space comes back).
Writes elsewhere (pytest, logs, MLflow) pass through. Linux (``/proc/self/fd``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest


class FillingDisk:
    """Patches ``os.write``; count the writes under ``folder`` and fail from the Nth."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        folder: Path,
        fail_at: int,
        freed_by: Path | None = None,
    ):
        self.folder = folder.resolve()
        self.fail_at = fail_at
        self.freed_by = freed_by
        self.writes = 0
        self.full = False
        self._real_write = os.write
        monkeypatch.setattr(os, "write", self._write)

    def _under_folder(self, descriptor: int) -> bool:
        try:
            target = Path(os.readlink(f"/proc/self/fd/{descriptor}"))
        except OSError:
            return False
        return target.is_relative_to(self.folder)

    def _write(self, descriptor: int, data: bytes) -> int:
        if not self._under_folder(descriptor):
            return self._real_write(descriptor, data)
        if self.full and self.freed_by is not None and not self.freed_by.exists():
            self.free()
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.writes += 1
        if self.writes >= self.fail_at:
            self.full = True  # the disk is full from here on
            return self._real_write(descriptor, bytes(data)[: max(1, len(data) // 2)])
        return self._real_write(descriptor, data)

    def free(self) -> None:
        """Space freed: writes succeed again."""
        self.full = False
        self.fail_at = 10**9
