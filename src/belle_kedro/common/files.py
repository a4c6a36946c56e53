"""Files that a kill never leaves half-written."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary name beside ``path``; on success rename it to ``path``.

    Whatever the block writes there (a writer that streams, like pyarrow's) becomes
    ``path`` whole. A failed write (a full disk, an exception) leaves ``path`` as it was
    and removes the staging file.
    """
    staging = path.with_name(f".{path.name}.tmp")
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
