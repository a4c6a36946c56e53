"""write_atomic: the old file or the whole new one, never a part, and no leftovers."""

from __future__ import annotations

from pathlib import Path

import pytest

from belle_kedro.common.files import write_atomic


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
