"""String facts (digests, names) as tags of the active MLflow run; metrics hold numbers only.

.. code-block:: yaml

   clean_tags:
     type: belle_kedro.datasets.mlflow_tags.MlflowTagsDataset
     prefix: clean
"""

from __future__ import annotations

from typing import Any

import mlflow
from kedro.io import AbstractDataset, DatasetError


class MlflowTagsDataset(AbstractDataset[dict[str, str], dict[str, str]]):
    """Saves ``{name: value}`` as tags ``<prefix>.<name>`` of the active run (none: no-op)."""

    def __init__(self, prefix: str, metadata: dict[str, Any] | None = None) -> None:
        self._prefix = prefix
        self.metadata = metadata

    def save(self, data: dict[str, str]) -> None:
        """Set the tags on the active run; outside one (a plain session) nothing happens."""
        if mlflow.active_run() is not None:
            mlflow.set_tags(
                {f"{self._prefix}.{name}": value for name, value in data.items()}
            )

    def load(self) -> dict[str, str]:
        """Tags are written for the run record only; read them back with MLflow."""
        raise DatasetError(
            f"'{self._prefix}' tags are write-only; read them from MLflow"
        )

    def _describe(self) -> dict[str, Any]:
        return {"prefix": self._prefix}
