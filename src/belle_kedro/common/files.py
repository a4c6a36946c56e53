"""Files that a kill never leaves half-written."""

from __future__ import annotations

from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` under a hidden temporary name beside ``path``, then rename it there.

    A reader (or a resumed run) sees the old file or the whole new one, never a part.
    A failed write (a full disk) leaves ``path`` as it was and removes the staging file.
    """
    staging = path.with_name(f".{path.name}.tmp")
    try:
        if isinstance(data, bytes):
            staging.write_bytes(data)
        else:
            staging.write_text(data, encoding="utf-8")
        staging.replace(path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
