"""The base of the load-only datasets: files people write, which pipelines only read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError


class ReadOnlyFileDataset(AbstractDataset[None, Any]):
    """A local file read by one loader (``load`` in the subclass) and never written."""

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath).expanduser()
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def save(self, data: None) -> None:
        raise DatasetError(
            f"{type(self).__name__} is read-only; refusing to overwrite {self._filepath} "
            "(edit it by hand)"
        )
