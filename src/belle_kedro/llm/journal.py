"""An append-only JSON Lines journal of raw LLM responses that survives SIGKILL.

Every record is written with one ``write`` call and flushed (and by default fsynced)
before ``append`` returns, so a response is on disk the moment the runner has it. A process killed in
the middle of a write leaves at most one torn last line (no trailing newline): readers
skip it and the next writer cuts it off before appending, so the file heals itself.
A last line that is a whole record and lacks only its newline (a kill between the
write and nothing else, or a file edited by hand) is kept: its answer was paid for.

A write that fails (a full disk: ENOSPC, a quota) cuts the file back to where the
record began before raising :class:`JournalWriteError`, which names the file: the
journal never holds a torn record, and once space is freed a rerun appends again.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from belle_kedro.common.errors import FormatError

# The JSON types each known field may hold; ``None`` is allowed where a field is optional.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "request_id": (str,),
    "text": (str,),
    "finish_reason": (str, type(None)),
    "model": (str,),
    "usage": (dict,),
    "started_at": (int, float),
    "finished_at": (int, float),
    "attempts": (int,),
    "error": (str, type(None)),
}


def _whole_record(raw: bytes, key: str) -> dict[str, Any] | None:
    """``raw`` as a record when it is one complete JSON object with its ``key`` field."""
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and key in record else None


def check_record(
    record: dict[str, Any],
    path: Path,
    line: int,
    field_types: dict[str, tuple[type, ...]] = FIELD_TYPES,
) -> None:
    """Raise :class:`FormatError` naming the first field whose JSON type is wrong."""
    for field, types in field_types.items():
        if field in record and (
            not isinstance(record[field], types) or isinstance(record[field], bool)
        ):
            expected = " or ".join(
                "null" if t is type(None) else t.__name__ for t in types
            )
            raise FormatError(
                path,
                line,
                field,
                f"should be {expected}, not {type(record[field]).__name__}",
            )
    for key, value in record.get("usage", {}).items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise FormatError(
                path, line, f"usage.{key}", f"should be a number, not {value!r}"
            )


class JournalWriteError(OSError):
    """A record could not be appended (disk full...); the file is as it was before."""


class ResponseJournal:
    """Append-only JSONL file of response records keyed by ``request_id``.

    Subclasses keep other records the same durable way by naming their own ``key``
    field and ``field_types`` (the batch ledger in :mod:`belle_kedro.llm.batch`).
    """

    key = "request_id"
    field_types = FIELD_TYPES

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._handle: Any = None

    def _open_for_append(self) -> Any:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._drop_torn_tail()
            # Unbuffered: a failed write leaves nothing pending to land later.
            self._handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 - kept open across appends
        return self._handle

    def _drop_torn_tail(self) -> None:
        """Cut a partial last line left by a killed writer (it was never acknowledged).

        A last line that is a whole record gets its newline instead of being cut.
        """
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        with open(self.path, "r+b") as handle:
            if _whole_record(data[keep:], self.key) is None:
                handle.truncate(keep)
            else:
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, record: dict[str, Any], *, sync: bool = True) -> None:
        """Write one record; flushed to the OS at once, fsynced unless ``sync=False``.

        After the flush the record survives SIGKILL (it is in the kernel's page cache);
        the fsync also makes it survive a power cut. ``sync=False`` lets an event loop
        hand the fsync to a thread (``sync()``) instead of blocking on the disk.
        """
        if self.key not in record:
            raise ValueError(f"a journal record needs a '{self.key}'")
        line = (
            json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8")
            + b"\n"
        )
        with self._lock:
            descriptor = self._open_for_append().fileno()
            start = os.lseek(descriptor, 0, os.SEEK_END)
            try:
                written = 0
                while written < len(line):  # a write may be short before it fails
                    written += os.write(descriptor, line[written:])
                if sync:
                    os.fsync(descriptor)
            except OSError as error:
                # Not acknowledged, so not kept: cut back to the last whole record.
                os.ftruncate(descriptor, start)
                raise JournalWriteError(
                    error.errno,
                    f"{self.path}: could not append a record ({error.strerror}); the "
                    "journal was cut back to its last whole record. Free space and "
                    "rerun: what it holds is not asked for (or paid) again",
                ) from error

    def sync(self) -> None:
        """fsync everything appended so far (safe to call from any thread)."""
        with self._lock:
            handle = self._handle
            descriptor = handle.fileno() if handle is not None else None
        if descriptor is not None:
            os.fsync(descriptor)

    def records(self) -> list[dict[str, Any]]:
        """All complete records in file order; a torn last line is ignored."""
        if not self.path.exists():
            return []
        with self._lock:
            data = self.path.read_bytes()
        lines = data.split(b"\n")
        # Without a trailing newline the last piece is a torn write, not a record yet,
        # unless it parses whole.
        complete, torn = lines[:-1], lines[-1]
        if _whole_record(torn, self.key) is not None:
            complete.append(torn)
        records: list[dict[str, Any]] = []
        for number, raw in enumerate(complete, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise FormatError(
                    self.path, number, None, f"not a JSON record ({error})"
                ) from None
            if not isinstance(record, dict) or self.key not in record:
                raise FormatError(self.path, number, self.key, "missing")
            check_record(record, self.path, number, self.field_types)
            records.append(record)
        return records

    def done_ids(self) -> set[str]:
        """Ids that have an answer stored (failed attempts do not count)."""
        return {str(r["request_id"]) for r in self.records() if not r.get("error")}

    def close(self) -> None:
        """Release the file handle (appending again reopens it)."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def __repr__(self) -> str:
        return f"ResponseJournal({str(self.path)!r})"
