"""The append-only response journal: durable appends and a torn tail after a kill."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from belle_kedro.common.errors import FormatError
from belle_kedro.llm.journal import ResponseJournal


def test_appends_are_read_back_in_order_and_done_ids_skip_failures(tmp_path: Path):
    journal = ResponseJournal(tmp_path / "nested" / "raw.jsonl")
    journal.append({"request_id": "a", "text": "一"})
    journal.append({"request_id": "b", "text": "", "error": "HTTP 500"})
    journal.append({"request_id": "c", "text": "三"})
    reread = ResponseJournal(journal.path)
    assert [r["request_id"] for r in reread.records()] == ["a", "b", "c"]
    assert reread.done_ids() == {"a", "c"}
    assert reread.records()[0]["text"] == "一"


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path: Path):
    path = tmp_path / "raw.jsonl"
    journal = ResponseJournal(path)
    journal.append({"request_id": "a", "text": "kept"})
    journal.close()
    with open(path, "ab") as handle:  # what SIGKILL in the middle of a write leaves
        handle.write(b'{"request_id": "b", "te')
    resumed = ResponseJournal(path)
    assert resumed.done_ids() == {"a"}
    resumed.append({"request_id": "b", "text": "again"})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["a", "b"]


def test_a_corrupt_middle_line_names_the_file_and_line(tmp_path: Path):
    path = tmp_path / "raw.jsonl"
    path.write_text(
        '{"request_id": "a"}\nnot json\n{"request_id": "c"}\n', encoding="utf-8"
    )
    with pytest.raises(FormatError) as caught:
        ResponseJournal(path).records()
    assert caught.value.line == 2 and str(path) in str(caught.value)


def test_records_need_a_request_id(tmp_path: Path):
    with pytest.raises(ValueError, match="request_id"):
        ResponseJournal(tmp_path / "raw.jsonl").append({"text": "x"})
    assert ResponseJournal(tmp_path / "missing.jsonl").records() == []


def test_unsynced_appends_are_readable_at_once_and_sync_is_safe(tmp_path: Path):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    journal.sync()  # nothing open yet: a no-op
    journal.append({"request_id": "a"}, sync=False)
    assert ResponseJournal(journal.path).done_ids() == {
        "a"
    }  # flushed to the OS already
    journal.sync()


def test_a_whole_last_record_without_its_newline_is_kept_and_completed(tmp_path: Path):
    path = tmp_path / "raw.jsonl"
    path.write_bytes(
        b'{"request_id": "a", "text": "x"}\n{"request_id": "b", "text": "paid"}'
    )
    journal = ResponseJournal(path)
    assert [r["request_id"] for r in journal.records()] == ["a", "b"]
    journal.append({"request_id": "c", "text": "z"})
    journal.close()
    assert [r["request_id"] for r in ResponseJournal(path).records()] == ["a", "b", "c"]
    assert path.read_bytes().count(b"\n") == 3


@pytest.mark.parametrize(
    ("record", "field", "problem"),
    [
        ({"usage": "12 tokens"}, "usage", "should be dict, not str"),
        ({"usage": {"prompt_tokens": "12"}}, "usage.prompt_tokens", "a number"),
        ({"text": 5}, "text", "should be str, not int"),
        ({"attempts": True}, "attempts", "should be int, not bool"),
        ({"error": 1}, "error", "should be str or null, not int"),
        ({"request_id": 7}, "request_id", "should be str, not int"),
    ],
)
def test_a_wrong_typed_field_is_a_format_error_naming_file_line_and_field(
    tmp_path: Path, record: dict, field: str, problem: str
):
    path = tmp_path / "raw.jsonl"
    good = {"request_id": "a", "text": "ok", "usage": {"prompt_tokens": 1}}
    path.write_text(
        json.dumps(good) + "\n" + json.dumps({**good, **record}) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(FormatError) as caught:
        ResponseJournal(path).records()
    assert (caught.value.path, caught.value.line, caught.value.field) == (
        str(path),
        2,
        field,
    )
    assert problem in str(caught.value)
    assert f"{path}, line 2: field '{field}'" in str(caught.value)


def test_close_releases_the_file_and_a_later_append_reopens_it(tmp_path: Path):
    import os

    journal = ResponseJournal(tmp_path / "raw.jsonl")
    journal.append({"request_id": "a", "text": "x"})

    def open_on_journal() -> int:
        return sum(
            os.path.realpath(f"/proc/self/fd/{fd}") == str(journal.path.resolve())
            for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")
        )

    assert open_on_journal() == 1
    journal.close()
    assert open_on_journal() == 0
    journal.append({"request_id": "b", "text": "y"})
    assert [r["request_id"] for r in journal.records()] == ["a", "b"]
    journal.close()


# What mutation testing (scripts/mutation.sh journal) showed untested; docs/mutation.md.


def test_a_journal_in_missing_nested_folders_makes_them(tmp_path: Path):
    journal = ResponseJournal(tmp_path / "a" / "b" / "raw.jsonl")
    journal.append({"request_id": "a", "text": "一"})
    assert repr(journal) == f"ResponseJournal('{journal.path}')"
    assert [r["request_id"] for r in journal.records()] == ["a"]


def test_each_line_is_the_record_as_sorted_utf8_json(tmp_path: Path):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    record = {"text": "答案", "request_id": "a", "model": "m"}
    journal.append(record)
    assert journal.path.read_bytes() == (
        '{"model": "m", "request_id": "a", "text": "答案"}\n'.encode()
    )


@pytest.mark.parametrize(
    "tail",
    [b"[1, 2]", b'{"text": "no id"}', b'{"request_id": "c", "te'],
    ids=["not-an-object", "no-key", "torn"],
)
def test_only_a_whole_record_counts_as_a_last_line_and_earlier_ones_stay(
    tmp_path: Path, tail: bytes
):
    path = tmp_path / "raw.jsonl"
    journal = ResponseJournal(path)
    for name in ("a", "b"):
        journal.append({"request_id": name, "text": name})
    journal.close()
    with open(path, "ab") as handle:
        handle.write(tail)
    assert [r["request_id"] for r in ResponseJournal(path).records()] == ["a", "b"]
    journal.append({"request_id": "d", "text": "d"})  # cuts the tail, keeps a and b
    assert [r["request_id"] for r in ResponseJournal(path).records()] == ["a", "b", "d"]
    assert path.read_bytes().count(b"\n") == 3


def test_blank_lines_are_skipped_not_the_end(tmp_path: Path):
    path = tmp_path / "raw.jsonl"
    path.write_text(
        '{"request_id": "a"}\n\n  \n{"request_id": "b"}\n', encoding="utf-8"
    )
    assert [r["request_id"] for r in ResponseJournal(path).records()] == ["a", "b"]


def test_a_middle_record_without_its_key_names_file_line_and_field(tmp_path: Path):
    path = tmp_path / "raw.jsonl"
    path.write_text('{"request_id": "a"}\n{"text": "x"}\n', encoding="utf-8")
    with pytest.raises(FormatError) as raised:
        ResponseJournal(path).records()
    assert str(raised.value) == f"{path}, line 2: field 'request_id' missing"
    path.write_text('{"request_id": "a"}\n{nope\n', encoding="utf-8")
    with pytest.raises(FormatError, match=rf"^{path}, line 2: not a JSON record \("):
        ResponseJournal(path).records()


def test_a_subclass_checks_its_own_field_types(tmp_path: Path):
    class Tally(ResponseJournal):
        key = "id"
        field_types = {"count": (int,)}

    path = tmp_path / "tally.jsonl"
    path.write_text('{"id": "x", "count": "three"}\n', encoding="utf-8")
    with pytest.raises(
        FormatError, match="line 1: field 'count' should be int, not str"
    ):
        Tally(path).records()


class WriteSpy:
    """Calls the real ``os.write``/``os.fsync`` on the journal's file, writing at most
    ``most`` bytes a call (a short write, as pipes and filling disks give)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, most: int):
        self.most = most
        self.synced: list[int] = []
        self._write, self._fsync = os.write, os.fsync
        monkeypatch.setattr(os, "write", self.write)
        monkeypatch.setattr(os, "fsync", self.fsync)

    def write(self, descriptor: int, data: bytes) -> int:
        return self._write(descriptor, bytes(data)[: self.most])

    def fsync(self, descriptor: int) -> None:
        self.synced.append(descriptor)
        self._fsync(descriptor)


def test_short_writes_are_continued_and_appends_fsync_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    journal = ResponseJournal(tmp_path / "raw.jsonl")
    spy = WriteSpy(monkeypatch, most=7)
    journal.append({"request_id": "a", "text": "一二三四五六七八九十"})
    assert len(spy.synced) == 1  # fsynced by default
    journal.append({"request_id": "b", "text": "b"}, sync=False)
    assert len(spy.synced) == 1
    journal.sync()
    assert len(spy.synced) == 2 and spy.synced[-1] == journal._handle.fileno()
    assert [r["text"] for r in journal.records()] == ["一二三四五六七八九十", "b"]
