"""write_atomic and the staged fsspec writes of every catalog file: the old file or the
whole new one, never a part, and no leftovers."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io import DatasetError

from belle_kedro.common.files import (
    StagedLocalFileSystem,
    stage_local_writes,
    write_atomic,
)
from tests.support.small_disk import small_disk


def test_text_and_bytes_replace_the_file_whole(tmp_path: Path):
    path = tmp_path / "summary.json"
    write_atomic(path, "第一版")
    assert path.read_text(encoding="utf-8") == "第一版"
    write_atomic(path, b"\x00\x01second")
    assert path.read_bytes() == b"\x00\x01second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_staging(tmp_path: Path):
    path = tmp_path / "summary.json"
    write_atomic(path, "old")
    # A lone surrogate cannot be encoded: the write fails after the staging file opened.
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "new" * 1000 + "\udc80")
    assert path.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


class Unpicklable:
    """Fails mid-pickle, after the bytes before it went out."""

    def __reduce__(self):
        raise TypeError("cannot pickle this")


@pytest.fixture
def staged_writes() -> None:
    """What belle_kedro/settings.py does for every Kedro session."""
    stage_local_writes()


def test_a_kedro_dataset_that_fails_mid_save_leaves_the_old_file(
    tmp_path: Path, staged_writes
):
    from kedro_datasets.json import JSONDataset
    from kedro_datasets.pickle import PickleDataset

    json_path, pickle_path = tmp_path / "report.json", tmp_path / "model.pkl"
    JSONDataset(filepath=str(json_path)).save({"old": 1})
    PickleDataset(filepath=str(pickle_path)).save({"old": 1})
    # Text (json.dump through io.TextIOWrapper) and binary (pickle) writers, each
    # failing after part of the output reached the file.
    with pytest.raises(DatasetError, match="is not JSON serializable"):
        JSONDataset(filepath=str(json_path)).save({"a": "x" * 20_000, "b": object()})
    with pytest.raises(DatasetError, match="cannot pickle this"):
        PickleDataset(filepath=str(pickle_path)).save(["x" * 20_000, Unpicklable()])
    assert JSONDataset(filepath=str(json_path)).load() == {"old": 1}
    assert PickleDataset(filepath=str(pickle_path)).load() == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pkl", "report.json"]


def test_a_write_inside_an_except_block_is_still_kept(tmp_path: Path, staged_writes):
    import fsspec

    assert isinstance(fsspec.filesystem("file"), StagedLocalFileSystem)
    try:
        raise KeyError("handled before the file opened")
    except KeyError:
        with fsspec.filesystem("file").open(str(tmp_path / "a.txt"), "w") as file:
            file.write("whole")
    assert (tmp_path / "a.txt").read_text() == "whole"
    with fsspec.filesystem("file").open(str(tmp_path / "a.txt"), "a") as file:
        file.write(" and appended")  # appends go to the file itself, as before
    assert (tmp_path / "a.txt").read_text() == "whole and appended"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


@pytest.mark.slow
def test_a_full_disk_during_a_csv_save_leaves_no_file_and_a_resave_works(
    tmp_path: Path, staged_writes
):
    import pandas as pd
    from kedro_datasets.pandas import CSVDataset

    table = pd.DataFrame({"text": ["答" * 500] * 2000})
    with small_disk(tmp_path / "disk", "4m") as disk:
        path = disk.folder / "table.csv"
        disk.fill(leave=1_000_000)  # the CSV is ~3 MB
        with pytest.raises(DatasetError, match="No space left on device") as raised:
            CSVDataset(filepath=str(path)).save(table)
        # The file named in the cause, not its hidden staging name.
        assert str(raised.value).endswith(f"No space left on device: '{path}'")
        assert disk.files() == []  # neither a torn table.csv nor its staging file
        disk.free()
        CSVDataset(filepath=str(path), save_args={"index": False}).save(table)
        pd.testing.assert_frame_equal(CSVDataset(filepath=str(path)).load(), table)
