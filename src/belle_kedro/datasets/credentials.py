"""Load-only dataset that hands a node one section of ``conf/local/credentials.yml``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from kedro.io.core import AbstractDataset, DatasetError

from belle_kedro.common.errors import FormatError


class Credentials(Mapping[str, Any]):
    """A read-only mapping whose repr never shows the values."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Credentials(keys={sorted(self._values)})"


class CredentialsDataset(AbstractDataset[None, Credentials]):
    """One section (e.g. ``openai``) of a credentials YAML file; empty when absent.

    Kedro only reads ``conf/local`` when it is the run environment, but a key must work
    with ``--env openai`` too, so this dataset reads the file itself. A missing file or
    section yields empty credentials and the backend falls back to its env variable.

    Example catalog entry::

        generator_credentials:
          type: belle_kedro.datasets.credentials.CredentialsDataset
          section: openai
    """

    def __init__(
        self,
        section: str,
        filepath: str = "conf/local/credentials.yml",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._section = section
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> Credentials:
        """The section as a ``Credentials`` mapping (values never in its repr)."""
        if not self._filepath.is_file():
            return Credentials({})
        try:
            content = yaml.safe_load(self._filepath.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise FormatError(self._filepath, line, None, "not valid YAML") from None
        section = content.get(self._section) if isinstance(content, dict) else None
        if section is None:
            return Credentials({})
        if not isinstance(section, dict):
            raise FormatError(
                self._filepath,
                None,
                self._section,
                "must be a mapping (e.g. api_key: ...)",
            )
        return Credentials(section)

    def save(self, data: None) -> None:
        """Refused: credentials are written by hand, never by a pipeline."""
        raise DatasetError("CredentialsDataset is read-only")

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "section": self._section}
