"""A full disk while journaling: a clear error naming the file, no torn record, and
the answers in flight kept in the space the journal set aside for them (its reserve)."""

from __future__ import annotations

import errno
import os
from collections import Counter
from pathlib import Path

import pytest

from belle_kedro.llm.base import LLMRequest
from belle_kedro.llm.journal import (
    RESERVE_PER_ANSWER,
    JournalWriteError,
    ResponseJournal,
)
from tests.support.disk_full import FillingDisk
from tests.support.llm import collect, openai_backend
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.small_disk import small_disk


def record(number: int) -> dict:
    return {"request_id": f"r{number}", "text": "答" * 200, "model": "m", "usage": {}}


def requests(count: int) -> list[LLMRequest]:
    return [
        LLMRequest(f"r{i}", f"prompt {i}", params={"max_tokens": 8})
        for i in range(count)
    ]


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


def reserve_blocks(path: Path) -> int:
    """The bytes of disk ``path`` holds (allocated blocks, not its apparent size)."""
    return path.stat().st_blocks * 512


def test_the_runner_holds_a_reserve_while_it_runs_and_removes_it_after(tmp_path: Path):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    held: list[int] = []

    def responder(body: dict, endpoint: str) -> Reply:
        held.append(reserve_blocks(journal.reserve_path))
        return Reply(text="答")

    with FakeOpenAIServer(responder) as server:
        collect(openai_backend(server.base_url), requests(6), journal, max_in_flight=3)
    assert held and min(held) >= 3 * RESERVE_PER_ANSWER  # three in flight, all backed
    assert not journal.reserve_path.exists()
    assert len(journal.records()) == 6


def test_the_reserve_is_written_as_zeros_where_fallocate_is_unsupported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def unsupported(descriptor: int, offset: int, length: int) -> None:
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    with journal.reserved(3 * 1024 * 1024 + 5):
        assert journal.reserve_path.stat().st_size == 3 * 1024 * 1024 + 5
        assert reserve_blocks(journal.reserve_path) >= 3 * 1024 * 1024 + 5
    assert not journal.reserve_path.exists()


@pytest.mark.parametrize("sync", [True, False])
def test_a_full_disk_releases_the_reserve_and_journals_the_answers_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: bool
):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    disk = FillingDisk(monkeypatch, tmp_path, fail_at=3, freed_by=journal.reserve_path)
    with journal.reserved(RESERVE_PER_ANSWER):
        for number in range(4):  # the 3rd write is short, then the disk is full
            journal.append(record(number), sync=sync)
            assert journal.on_reserve == (number >= 2)
        error = journal.full_error()
    assert not journal.reserve_path.exists()
    assert error.errno == errno.ENOSPC
    assert error.strerror == (
        f"{journal.path}: disk full (No space left on device); nothing more was sent, "
        "and the 2 answer(s) in flight when it filled were journaled in the space set "
        "aside for them. Free space and rerun: nothing the journal holds is asked for "
        "(or paid) again"
    )
    assert [r["request_id"] for r in journal.records()] == ["r0", "r1", "r2", "r3"]
    assert journal.path.read_bytes().endswith(b"\n")
    assert disk.writes >= 3


def test_a_full_disk_with_no_room_after_the_release_fails_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    FillingDisk(monkeypatch, tmp_path, fail_at=2)  # releasing the reserve frees nothing
    with journal.reserved(RESERVE_PER_ANSWER):
        journal.append(record(0))
        before = journal.path.read_bytes()
        with pytest.raises(JournalWriteError, match="could not append a record"):
            journal.append(record(1))
        assert journal.path.read_bytes() == before
    assert not journal.reserve_path.exists()


def test_the_runner_stops_at_a_full_disk_and_the_rerun_pays_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    disk = FillingDisk(monkeypatch, tmp_path, fail_at=3, freed_by=journal.reserve_path)
    with FakeOpenAIServer(latency_s=0.05) as server:
        backend = openai_backend(server.base_url)
        with pytest.raises(JournalWriteError) as raised:
            collect(backend, requests(20), journal, max_in_flight=4)
        assert "disk full (No space left on device)" in str(raised.value)
        paid_before = Counter(r["client_request_id"] for r in server.requests)
        # Stopped early, and every answer paid for (those in flight too) is kept.
        assert 3 <= len(paid_before) < 20
        assert {r["request_id"] for r in journal.records()} == set(paid_before)
        assert not journal.reserve_path.exists()
        disk.free()
        responses = collect(
            backend, requests(20), ResponseJournal(journal.path), max_in_flight=4
        )
        paid = Counter(r["client_request_id"] for r in server.requests)
    assert all(response.ok for response in responses.values()) and len(responses) == 20
    assert len(paid) == 20 and set(paid.values()) == {1}  # nothing paid twice


@pytest.mark.slow  # mounts a tmpfs
def test_a_disk_without_room_for_the_reserve_refuses_to_start_and_pays_nothing(
    tmp_path: Path,
):
    with small_disk(tmp_path / "disk", "4m") as disk:
        journal = ResponseJournal(disk.folder / "01_raw" / "raw.jsonl")
        disk.fill(leave=4 * RESERVE_PER_ANSWER - 64 * 1024)
        with FakeOpenAIServer() as server:
            with pytest.raises(JournalWriteError) as raised:
                collect(
                    openai_backend(server.base_url),
                    requests(8),
                    journal,
                    max_in_flight=4,
                )
            assert server.requests == []  # nothing sent, nothing paid
        assert raised.value.errno == errno.ENOSPC
        assert str(raised.value) == (
            f"[Errno 28] {journal.path}: cannot set aside {4 * RESERVE_PER_ANSWER} "
            "bytes beside it (No space left on device) for the answers in flight "
            "should the disk fill; nothing was sent. Free at least "
            f"{4 * RESERVE_PER_ANSWER} bytes on its disk and rerun"
        )
        assert disk.files() == ["01_raw"]  # no journal, no reserve left behind
