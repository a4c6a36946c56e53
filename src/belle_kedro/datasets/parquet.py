"""kedro-datasets' ``pandas.ParquetDataset``, saved atomically and in a canonical layout.

Its own ``save`` streams pyarrow's output straight into the target, so a full disk or a
kill mid-save leaves a torn Parquet file where the next stage (or ``kedro run
--from-nodes``) reads, under the newest version folder of a versioned entry. Here
pyarrow streams into a staging file beside the target
(:func:`~belle_kedro.common.files.staged`), renamed over it only once whole: the target
is whole or untouched, and a ten-million-record table is never held a second time as
bytes in memory.

pyarrow cuts a column's data pages where its in-memory Arrow chunks end, so the same
table held in other chunks (``clean`` filters its columns a chunk at a time) would be
other bytes. Each row group is written from one chunk per column, joined for that row
group only: the bytes are those of the table alone, as ``DataFrame.to_parquet`` writes
a frame whose columns are single arrays.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.pandas import ParquetDataset as StreamedParquetDataset

from belle_kedro.common.files import staged

#: pyarrow's own default: a row group holds at most 1024 * 1024 rows.
ROW_GROUP_ROWS = 1024 * 1024


def write_parquet(
    data: pd.DataFrame, where: str | Path | IO[bytes], **save_args: Any
) -> None:
    """Write ``data`` as ``data.to_parquet(where, **save_args)`` would were each column
    one array: the same schema, pandas metadata, compression and row groups."""
    args = dict(save_args)
    from_pandas: dict[str, Any] = {"schema": args.pop("schema", None)}
    if (index := args.pop("index", None)) is not None:
        from_pandas["preserve_index"] = index
    table = pa.Table.from_pandas(data, **from_pandas)
    if data.attrs:  # where pandas keeps them, so a load gives them back
        table = table.replace_schema_metadata(
            {**table.schema.metadata, "PANDAS_ATTRS": json.dumps(data.attrs)}
        )
    rows = args.pop("row_group_size", None) or ROW_GROUP_ROWS
    args.setdefault("compression", "snappy")
    with pq.ParquetWriter(where, table.schema, **args) as writer:
        for start in range(0, max(table.num_rows, 1), rows):
            writer.write_table(table.slice(start, rows).combine_chunks())


class ParquetDataset(StreamedParquetDataset):
    """``pandas.ParquetDataset`` whose saves are canonical and, on a local disk, never
    leave a partial file."""

    def save(self, data: pd.DataFrame) -> None:
        save_path = get_filepath_str(self._get_save_path(), self._protocol)
        if "partition_cols" in self._save_args:
            raise DatasetError(
                f"{save_path}: save_args.partition_cols is not supported; "
                "use kedro.io.PartitionedDataset"
            )
        if self._protocol != "file":
            # Object stores publish an object only once its upload completes.
            with self._fs.open(save_path, **self._fs_open_args_save) as remote:
                write_parquet(data, remote, **self._save_args)
            self._invalidate_cache()
            return
        path = Path(save_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with staged(path) as staging:
                write_parquet(data, staging, **self._save_args)
        except OSError as error:
            raise DatasetError(
                f"{path}: could not save ({error.strerror}); nothing was left there, "
                "rerun once there is space"
            ) from error
        self._invalidate_cache()
