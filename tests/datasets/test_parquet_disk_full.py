"""A full disk during a catalog's Parquet save: an error naming the file, no torn file
left under the version folder, and after space is freed the save gives the same table.
A real tmpfs (tests/support/small_disk.py): pyarrow writes from C++, past ``os.write``."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog, DatasetError

from tests.support.project import REPO_ROOT
from tests.support.records import make_records
from tests.support.small_disk import small_disk


@pytest.mark.slow
def test_a_full_disk_during_a_parquet_save_leaves_no_file_and_a_resave_works(tmp_path):
    # conf/base's own entry (versioned, the project's Parquet class), moved to the disk.
    declared = yaml.safe_load(
        (REPO_ROOT / "conf" / "base" / "catalog_clean.yml").read_text(encoding="utf-8")
    )["clean_instructions"]
    records = make_records(3000, seed=3)
    buffer = io.BytesIO()
    records.to_parquet(buffer)
    with small_disk(tmp_path / "disk", "8m") as disk:
        target = disk.folder / "clean_instructions.parquet"
        config = {"clean_instructions": {**declared, "filepath": str(target)}}
        disk.fill(leave=len(buffer.getvalue()) // 2)
        with pytest.raises(DatasetError) as raised:
            DataCatalog.from_config(config).save("clean_instructions", records)
        # The entry and the file: .../clean_instructions.parquet/<version>/<name>
        assert str(raised.value).startswith(f"clean_instructions: {target}/")
        assert "No space left on device" in str(raised.value)
        assert not [name for name in disk.files() if name.endswith(".parquet")
                    and (disk.folder / name).is_file()]  # fmt: skip
        with pytest.raises(DatasetError):  # no version to load: nothing half there
            DataCatalog.from_config(config).load("clean_instructions")
        disk.free()
        DataCatalog.from_config(config).save("clean_instructions", records)
        pd.testing.assert_frame_equal(
            DataCatalog.from_config(config).load("clean_instructions"), records
        )
