"""A versioned file that is also logged to the active MLflow run (kedro-mlflow, fixed).

kedro-mlflow's ``MlflowArtifactDataset`` builds its inner dataset itself, so an inner
``versioned: true`` gets a fresh timestamp of its own. Kedro 1.x requires every
versioned dataset in a catalog to share the catalog's save version and raises
``VersionAlreadyExistsError`` as soon as a second such dataset appears. Here
``versioned: true`` goes at the top level instead: Kedro hands this class the catalog's
``Version`` and it is given to the inner dataset, so the file lands in the run's
version folder and the same file is logged to MLflow.

.. code-block:: yaml

   eval_report:
     type: belle_kedro.datasets.versioned_artifact.VersionedMlflowArtifactDataset
     versioned: true
     artifact_path: evaluate
     dataset:
       type: text.TextDataset
       filepath: data/08_reporting/eval_report.md
"""

from __future__ import annotations

from typing import Any

from kedro.io.core import DatasetError, Version
from kedro_mlflow.io.artifacts import MlflowArtifactDataset


class VersionedMlflowArtifactDataset(MlflowArtifactDataset):
    """``MlflowArtifactDataset`` whose inner dataset uses the catalog's save version."""

    versioned = (
        False  # Kedro passes a Version only when the entry says `versioned: true`
    )

    def __new__(
        cls,
        dataset: str | dict[str, Any],
        *,
        version: Version | None = None,
        run_id: str | None = None,
        artifact_path: str | None = None,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Any:
        inner: dict[str, Any] = (
            {"type": dataset} if isinstance(dataset, str) else dict(dataset)
        )
        if "versioned" in inner:
            raise DatasetError(
                "put 'versioned: true' on the VersionedMlflowArtifactDataset entry itself, "
                "not on its inner 'dataset' (an inner flag gets a save version of its own)"
            )
        if version is not None:
            inner["versioned"] = True
        instance = MlflowArtifactDataset.__new__(
            MlflowArtifactDataset,
            dataset=inner,
            run_id=run_id,
            artifact_path=artifact_path,
            credentials=credentials,
            metadata=metadata,
        )
        if version is not None:
            # The inner dataset was built with a timestamp of its own; the catalog's wins.
            instance._version = version
        return instance
