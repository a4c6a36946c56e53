"""Load-only Kedro dataset over one or several Alpaca/BELLE instruction files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io.core import AbstractDataset, DatasetError

from belle_kedro.formats.instructions import load_instruction_files


class InstructionFileDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """Instruction records (``instruction, input, output`` + provenance) from files.

    ``filepath`` is one path or a list of paths, read and concatenated in that order
    (see ``belle_kedro.formats.instructions`` for the accepted shapes). Example::

        generated_instructions:
          type: belle_kedro.datasets.instructions.InstructionFileDataset
          filepath:
            - ${oc.env:BELLE_SHARED_DATA,../shared/data/zh_instructions}/alpaca_zh_carbonz0.json
            - ${oc.env:BELLE_SHARED_DATA,../shared/data/zh_instructions}/alpaca_zh_openchinese_v3.json
    """

    def __init__(
        self, filepath: str | list[str], metadata: dict[str, Any] | None = None
    ) -> None:
        paths = [filepath] if isinstance(filepath, str) else list(filepath)
        if not paths:
            raise DatasetError("InstructionFileDataset needs at least one filepath")
        self._paths = [Path(path) for path in paths]
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        """Parse every file; a bad record raises ``FormatError`` naming file, line, field."""
        return load_instruction_files(self._paths)

    def save(self, data: pd.DataFrame) -> None:
        """Input files belong to the user; the pipeline never rewrites them."""
        raise DatasetError(
            f"InstructionFileDataset is read-only; refusing to overwrite {self._paths}."
        )

    def _exists(self) -> bool:
        return all(path.is_file() for path in self._paths)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": [str(path) for path in self._paths]}
