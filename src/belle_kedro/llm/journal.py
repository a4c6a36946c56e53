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

While a runner uses it, the journal holds a *reserve* (:meth:`ResponseJournal.reserved`):
a preallocated file beside it, as large as the answers the runner may have in flight.
An append that meets a full disk releases the reserve and writes again, and the journal
is then :attr:`~ResponseJournal.on_reserve`: the runner sends nothing more, journals the
answers still in flight into the freed space and stops (:meth:`~ResponseJournal.full_error`),
so no answer that was paid for is lost to a full disk.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


# Room set aside for each answer in flight when the disk fills. A record holds its
# answer once as UTF-8 JSON (a CJK token is 3 to 6 bytes) beside its params, meta and
# usage: 256 KiB keeps an answer of 16K tokens at 8 bytes each, many times the
# generator's (128) and the judge's (256) default max_tokens. A larger record makes the
# write after the release fail like any other (cut back, JournalWriteError).
RESERVE_PER_ANSWER = 256 * 1024

# The errors that say the disk (or the user's quota) is full: the reserve helps with these.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

# What posix_fallocate raises where the file system cannot preallocate: write zeros.
NO_FALLOCATE = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})


class JournalWriteError(OSError):
    """A record could not be appended (disk full...); the file is as it was before."""


def _append_whole(descriptor: int, line: bytes, sync: bool) -> None:
    """Write ``line`` at the end; on failure cut the file back to where it began."""
    start = os.lseek(descriptor, 0, os.SEEK_END)
    try:
        written = 0
        while written < len(line):  # a write may be short before it fails
            written += os.write(descriptor, line[written:])
        if sync:
            os.fsync(descriptor)
    except OSError:
        # Not acknowledged, so not kept: cut back to the last whole record.
        os.ftruncate(descriptor, start)
        raise


def _preallocate(path: Path, size: int) -> None:
    """Give ``path`` ``size`` bytes of real disk blocks (reusing those it has)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        try:
            os.posix_fallocate(descriptor, 0, size)
        except OSError as error:
            if error.errno not in NO_FALLOCATE:
                raise
            os.lseek(descriptor, 0, os.SEEK_SET)
            written = 0
            while written < size:
                written += os.write(descriptor, bytes(min(size - written, 1 << 20)))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


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
        self.reserve_path = self.path.with_name(f".{self.path.name}.reserve")
        self._reserve_bytes = 0
        # The error that used up the reserve, and the records appended since then.
        self._full: OSError | None = None
        self.kept_on_reserve = 0

    @property
    def on_reserve(self) -> bool:
        """Whether the disk filled and appends now use the reserve (send nothing more)."""
        return self._full is not None

    @contextmanager
    def reserved(self, size: int) -> Iterator[None]:
        """Set ``size`` bytes aside beside the journal for the ``with`` body.

        Raises :class:`JournalWriteError` (nothing written) when the disk lacks them. A
        reserve left by a killed run is reused, and the file is removed on the way out
        (``size`` 0 holds nothing and only removes such a leftover).
        """
        try:
            if size > 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _preallocate(self.reserve_path, size)
        except OSError as error:
            self.reserve_path.unlink(missing_ok=True)
            raise JournalWriteError(
                error.errno,
                f"{self.path}: cannot set aside {size} bytes beside it ({error.strerror}) "
                f"for the answers in flight should the disk fill; nothing was sent. Free "
                f"at least {size} bytes on its disk and rerun",
            ) from error
        with self._lock:
            self._reserve_bytes, self._full, self.kept_on_reserve = size, None, 0
        try:
            yield
        finally:
            with self._lock:
                self._reserve_bytes = 0
            self.reserve_path.unlink(missing_ok=True)

    def _release_reserve(self) -> bool:
        """Give the reserve's space back to the disk; False when none is held."""
        if not self._reserve_bytes:
            return False
        self._reserve_bytes = 0
        self.reserve_path.unlink(missing_ok=True)
        return True

    def full_error(self) -> JournalWriteError:
        """The error a runner ends with once the answers it had in flight are journaled."""
        full = self._full
        if full is None:
            raise ValueError("the journal's disk has not filled")
        return JournalWriteError(
            full.errno,
            f"{self.path}: disk full ({full.strerror}); nothing more was sent, and the "
            f"{self.kept_on_reserve} answer(s) in flight when it filled were journaled "
            "in the space set aside for them. Free space and rerun: nothing the journal "
            "holds is asked for (or paid) again",
        )

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
            try:
                _append_whole(descriptor, line, sync)
            except OSError as error:
                if error.errno not in DISK_FULL or not self._release_reserve():
                    raise self._write_error(error) from error
                self._full = error
                try:
                    _append_whole(descriptor, line, sync)
                except OSError as again:
                    raise self._write_error(again) from again
            if self._full is not None:
                self.kept_on_reserve += 1

    def _write_error(self, error: OSError) -> JournalWriteError:
        return JournalWriteError(
            error.errno,
            f"{self.path}: could not append a record ({error.strerror}); the "
            "journal was cut back to its last whole record. Free space and "
            "rerun: what it holds is not asked for (or paid) again",
        )

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
