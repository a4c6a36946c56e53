"""A full disk while journaling: a clear error naming the file, and no torn record."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from belle_kedro.llm.journal import JournalWriteError, ResponseJournal
from tests.support.disk_full import FillingDisk


def record(number: int) -> dict:
    return {"request_id": f"r{number}", "text": "答" * 200, "model": "m", "usage": {}}


@pytest.mark.parametrize("sync", [True, False])
def test_a_full_disk_leaves_no_torn_record_and_a_later_append_works(
    tmp_path: Path, monkeypatch, sync
):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    disk = FillingDisk(monkeypatch, tmp_path, fail_at=4)
    for number in range(3):
        journal.append(record(number), sync=sync)
    before = journal.path.read_bytes()
    with pytest.raises(JournalWriteError) as raised:
        journal.append(record(3), sync=sync)
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.strerror == (
        f"{journal.path}: could not append a record (No space left on device); the "
        "journal was cut back to its last whole record. Free space and rerun: what it "
        "holds is not asked for (or paid) again"
    )
    assert disk.full  # half of the record reached the file before the error
    assert journal.path.read_bytes() == before  # ...and was cut back
    disk.free()
    journal.append(record(4), sync=sync)
    journal.close()
    assert [r["request_id"] for r in ResponseJournal(journal.path).records()] == [
        "r0",
        "r1",
        "r2",
        "r4",
    ]
    assert journal.path.read_bytes().endswith(b"\n")
