"""Files that a kill or a full disk never leaves half-written."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem


def staging_path(path: Path) -> Path:
    """The hidden name beside ``path`` that a write goes to before it becomes ``path``."""
    return path.with_name(f".{path.name}.tmp")


@contextmanager
def staged(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary name beside ``path``; on success rename it to ``path``.

    Whatever the block writes there (a writer that streams, like pyarrow's) becomes
    ``path`` whole. A failed write (a full disk, an exception) leaves ``path`` as it was
    and removes the staging file.
    """
    staging = staging_path(path)
    try:
        yield staging
        staging.replace(path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through :func:`staged`: a reader (or a resumed run) sees
    the old file or the whole new one, never a part."""
    with staged(path) as staging:
        if isinstance(data, bytes):
            staging.write_bytes(data)
        else:
            staging.write_text(data, encoding="utf-8")


class StagedWriter(io.BufferedWriter):
    """A binary file that becomes ``target`` only when it is closed whole.

    Bytes go to :func:`staging_path`; ``close`` renames it over ``target``, unless a
    write failed (a full disk: ENOSPC) or the ``with`` block (or the text layer above
    it) raised, and then removes it: ``target`` stays as it was.
    """

    def __init__(self, target: Path):
        self.target = target
        self.staging = staging_path(target)
        self.failed = False
        # An exception already being handled when the file opened is not this file's.
        self._handled_at_open = sys.exc_info()[1]
        super().__init__(io.FileIO(self.staging, "wb"))

    def write(self, data: Any) -> int:
        with self._failing():
            return super().write(data)

    def flush(self) -> None:
        with self._failing():
            super().flush()

    @contextmanager
    def _failing(self) -> Iterator[None]:
        """Mark the file failed on any error; an OS error (ENOSPC) names the target,
        not the hidden staging file."""
        try:
            yield
        except OSError as error:
            self.failed = True
            if error.errno is None:
                raise
            raise OSError(error.errno, error.strerror, str(self.target)) from error
        except BaseException:
            self.failed = True
            raise

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        self.failed = self.failed or kind is not None
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        try:
            with self._failing():
                super().close()
        except BaseException:
            self.staging.unlink(missing_ok=True)
            raise
        # A text layer (io.TextIOWrapper) closes its buffer without the exception.
        raised = sys.exc_info()[1]
        if self.failed or raised not in (None, self._handled_at_open):
            self.staging.unlink(missing_ok=True)
        else:
            self.staging.replace(self.target)


class StagedLocalFileSystem(LocalFileSystem):
    """fsspec's local file system whose whole-file writes go through :class:`StagedWriter`.

    kedro-datasets' JSON, pickle, CSV, text, Matplotlib and Plotly datasets write with
    ``fs.open(path, "wb"/"w")`` straight into the catalog's file: a full disk or a kill
    left a torn file in the version folder that the next stage loads. Appends and
    read-write modes are left as they are.
    """

    def _open(
        self, path: Any, mode: str = "rb", block_size: Any = None, **kwargs: Any
    ) -> Any:
        if mode != "wb" or not kwargs.get("autocommit", True):
            return super()._open(path, mode, block_size, **kwargs)
        target = Path(self._strip_protocol(path))
        if self.auto_mkdir:
            self.makedirs(self._parent(str(target)), exist_ok=True)
        return StagedWriter(target)


def stage_local_writes() -> None:
    """Make ``fsspec.filesystem("file")`` (every kedro-datasets local dataset) a
    :class:`StagedLocalFileSystem`."""
    for protocol in ("file", "local"):
        fsspec.register_implementation(protocol, StagedLocalFileSystem, clobber=True)
