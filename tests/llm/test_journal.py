"""The append-only response journal: durable appends and a torn tail after a kill."""

from __future__ import annotations

import json
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
