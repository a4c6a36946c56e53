"""kedro-datasets' ``pandas.ParquetDataset``, saved atomically on a local disk.

Its own ``save`` streams pyarrow's output straight into the target, so a full disk or a
kill mid-save leaves a torn Parquet file where the next stage (or ``kedro run
--from-nodes``) reads, under the newest version folder of a versioned entry. Here
pyarrow streams into a staging file beside the target
(:func:`~belle_kedro.common.files.staged`), renamed over it only once whole: the target
is whole or untouched, and a ten-million-record table is never held a second time as
bytes in memory.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.pandas import ParquetDataset as StreamedParquetDataset

from belle_kedro.common.files import staged


class ParquetDataset(StreamedParquetDataset):
    """``pandas.ParquetDataset`` whose local saves never leave a partial file."""

    def save(self, data: pd.DataFrame) -> None:
        if self._protocol != "file":
            # Object stores publish an object only once its upload completes.
            super().save(data)
            return
        path = Path(get_filepath_str(self._get_save_path(), self._protocol))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with staged(path) as staging:
                data.to_parquet(staging, **self._save_args)
        except OSError as error:
            raise DatasetError(
                f"{path}: could not save ({error.strerror}); nothing was left there, "
                "rerun once there is space"
            ) from error
        self._invalidate_cache()
