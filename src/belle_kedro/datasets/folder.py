"""A folder of files written as a whole: a reader sees the old folder or the new one.

The release pipeline returns a folder as ``{relative path: content}``, content being
text, bytes, a :class:`~pathlib.Path` to copy, or a writer called with the folder at
that path (``save_pretrained``: model weights go to disk, never through memory). ``save`` writes everything into a hidden staging folder beside the
target and then swaps it in, so a killed run never leaves a half-written release.
``load`` returns the folder's path, for the nodes that read it with their own tools
(``huggingface_hub.upload_folder``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError

FolderContent = Mapping[str, str | bytes | Path | Callable[[Path], None]]


class FolderDataset(AbstractDataset[FolderContent, str]):
    """``filepath`` is the folder; saving replaces it whole."""

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None):
        self._path = Path(filepath).expanduser()
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}

    def _exists(self) -> bool:
        return self._path.is_dir()

    def load(self) -> str:
        """The folder's path (``DatasetError`` when it was never written)."""
        if not self._path.is_dir():
            raise DatasetError(f"{self._path} does not exist: run the release pipeline")
        return str(self._path)

    def save(self, data: FolderContent) -> None:
        """Write every file under a staging folder, then swap it in for the old one."""
        staging = self._path.with_name(f".{self._path.name}.tmp")
        retired = self._path.with_name(f".{self._path.name}.old")
        for leftover in (staging, retired):
            shutil.rmtree(leftover, ignore_errors=True)
        for name, content in data.items():
            relative = PurePosixPath(name)
            if relative.is_absolute() or ".." in relative.parts:
                raise DatasetError(f"{name!r} is not a path inside the folder")
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if callable(content):
                target.mkdir(exist_ok=True)
                content(target)
            elif isinstance(content, Path):
                shutil.copyfile(content, target)
            elif isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        if self._path.exists():
            self._path.rename(retired)
        staging.rename(self._path)
        shutil.rmtree(retired, ignore_errors=True)
