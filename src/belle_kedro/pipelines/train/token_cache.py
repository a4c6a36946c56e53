"""Tokenise training records once, on disk, for every variant and every launcher rank.

The Kedro process tokenises (a batched fast tokenizer, every core); launcher ranks only
read the files, never tokenise. The cache is content-addressed, so a record is tokenised
once whichever variants hold it and in whatever order they train::

    <train.token_cache.root>/<fingerprint>/      tokenizer + template + max_length
        <records digest>/                         a shard: records tokenised together
            meta.json          fingerprint details, record count, records digest
            tokens.int32       every record's ids end to end (raw; read with os.pread)
            offsets.npy        int64, record i is tokens[offsets[i]:offsets[i + 1]]
            prompt_lengths.npy int32, prompt tokens of each record (masked in labels)
            keys.npy           16-byte BLAKE2b key of each record's three text fields

Split's variants are nested prefixes of one seeded order, but conf/belle appends the
same mix-in sample to every variant, so a smaller variant is not a prefix of a larger
one. Instead each variant gets a *view*: for each of its records, the shard and row
holding it. A variant looks its records up among the shards already there and
tokenises only the missing ones into a new shard; whichever variant trains first, the
others then tokenise nothing they share with it.

A shard is written under a temporary name (``.tmp-*``) and renamed into place with
``meta.json`` in it, so a kill never leaves a half shard that counts: folders without
``meta.json`` or with another fingerprint are ignored.

A rank reads its examples' ids with ``os.pread`` (:class:`TokenFile`), not through a
memory map: the pages it has read stay in the kernel's page cache, shared by every rank
of the node, instead of adding up in each rank's RSS as it walks through a 2M-record
variant. The small per-record arrays (offsets, prompt lengths, keys) are memory-mapped.

Every tokenizer, template, ``max_length`` or data change adds shards, so after each
build :func:`prune` removes shards unused for ``max_age_days``, then the least recently
used while the cache is over ``max_bytes``. A shard's ``.used`` stamp is touched by
every view that uses it; every process that builds or reads a view holds a shared
``flock`` on the shard's ``.lock`` until it exits, and a shard is removed only under
an exclusive one, so never while a running job holds it. A build holds its
``.tmp-*`` folder's ``.lock`` exclusively until the rename, so the cleanup never takes
a shard being written, and removes one whose writer was killed (and what a killed
removal left, ``.removing-*``).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from belle_kedro.common.files import write_atomic
from belle_kedro.common.records import RECORD_COLUMNS, as_text_records, record_bytes
from belle_kedro.common.template import build_prompt
from belle_kedro.common.text import TEXT_CHUNK
from belle_kedro.pipelines.train.settings import TokenCacheSettings
from belle_kedro.pipelines.train.sft import (
    TOKEN_DTYPE,
    SFTDataset,
    TokenArrays,
    encode_batches,
)

logger = logging.getLogger(__name__)

META_FILE = "meta.json"
TOKENS_FILE = "tokens.int32"
OFFSETS_FILE = "offsets.npy"
PROMPT_LENGTHS_FILE = "prompt_lengths.npy"
KEYS_FILE = "keys.npy"
KEY_DTYPE = np.dtype("S16")
# A view in a run folder: <name>.json (shards, fingerprint, counts) + <name>.npy rows.
VIEW_SUFFIX = ".json"
ROWS_SUFFIX = ".npy"
LOCK_FILE = (
    ".lock"  # shared flock while a process uses the shard, exclusive to remove it
)
USED_FILE = ".used"  # its mtime: the last time a view used the shard
STAGING_PREFIX = ".tmp-"  # a shard being written, renamed into place once whole
REMOVING_PREFIX = ".removing-"  # a shard being removed, renamed away first
DAY_S = 86400.0
# Shards this process holds a shared lock on (path -> open descriptor), until it exits.
_held: dict[Path, int] = {}


def record_keys(records: pd.DataFrame) -> np.ndarray:
    """A 16-byte BLAKE2b key per record of its instruction, input and output."""
    text = as_text_records(records, "training records")
    keys = np.empty(len(text), dtype=KEY_DTYPE)
    # A chunk at a time into the array: a list of ten million digests would be ten
    # million Python bytes objects.
    for start in range(0, len(text), TEXT_CHUNK):
        chunk = text.iloc[start : start + TEXT_CHUNK].loc[:, list(RECORD_COLUMNS)]
        keys[start : start + len(chunk)] = [
            hashlib.blake2b(
                record_bytes(instruction, input_text, output), digest_size=16
            ).digest()
            for instruction, input_text, output in chunk.itertuples(index=False)
        ]
    return keys


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """What identifies a tokenizer's output: its class, vocabulary, rules and EOS."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    # A fast tokenizer's JSON holds vocabulary, merges, normaliser and pre-tokeniser.
    definition = (
        backend.to_str()
        if backend is not None
        else json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    )
    return {
        "class": type(tokenizer).__name__,
        "name_or_path": str(tokenizer.name_or_path),
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "sha256": hashlib.sha256(definition.encode()).hexdigest(),
    }


def cache_fingerprint(
    tokenizer: PreTrainedTokenizerBase, max_length: int
) -> dict[str, Any]:
    """Everything that decides a record's cached tokens, and its short hash (``id``)."""
    details = {
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "template": {
            "with_input": build_prompt("{instruction}", "{input}"),
            "without_input": build_prompt("{instruction}"),
            "answer": "output.strip() + EOS",
        },
        "max_length": int(max_length),
    }
    digest = hashlib.sha256(json.dumps(details, sort_keys=True).encode()).hexdigest()
    return {"id": digest[:16], **details}


class TokenFile:
    """A shard's ``tokens.int32``, sliced like an array and read with ``os.pread``.

    The descriptor opens on first read and is never pickled, so a dataset handed to
    DataLoader workers carries only the path (``pread`` takes its own offset, so a
    descriptor inherited by a fork is safe too).
    """

    def __init__(self, path: Path, length: int):
        self.path = path
        self.length = length
        self._descriptor: int | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, span: slice) -> np.ndarray:
        start, stop, step = span.indices(self.length)
        if step != 1:
            raise ValueError(f"{self.path}: only contiguous slices are read")
        count = max(0, stop - start)
        if self._descriptor is None:
            self._descriptor = os.open(self.path, os.O_RDONLY)
            weakref.finalize(self, os.close, self._descriptor)
        size = count * TOKEN_DTYPE().itemsize
        data = os.pread(self._descriptor, size, start * TOKEN_DTYPE().itemsize)
        if len(data) != size:
            raise OSError(
                f"{self.path} ends before token {stop} (its offsets say it holds "
                f"{self.length}); delete the shard so the next run rebuilds it"
            )
        return np.frombuffer(data, dtype=TOKEN_DTYPE)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "length": self.length}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.length = state["path"], state["length"]
        self._descriptor = None


@dataclass(frozen=True)
class TokenShard:
    """One shard of the cache: token ids read on demand, per-record arrays memory-mapped."""

    path: Path
    arrays: TokenArrays
    keys: np.ndarray

    @classmethod
    def open(cls, path: Path, fingerprint_id: str) -> TokenShard | None:
        """The shard at ``path``; None when it is incomplete or has another fingerprint."""
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("fingerprint", {}).get("id") != fingerprint_id:
            return None
        offsets = np.load(path / OFFSETS_FILE, mmap_mode="r")
        return cls(
            path=path,
            arrays=TokenArrays(
                tokens=TokenFile(path / TOKENS_FILE, int(offsets[-1])),
                offsets=offsets,
                prompt_lengths=np.load(path / PROMPT_LENGTHS_FILE, mmap_mode="r"),
            ),
            keys=np.load(path / KEYS_FILE, mmap_mode="r"),
        )


def write_shard(
    folder: Path,
    records: pd.DataFrame,
    keys: np.ndarray,
    tokenizer: PreTrainedTokenizerBase,
    *,
    fingerprint: dict[str, Any],
    batch_size: int,
) -> Path:
    """Tokenise ``records`` into a new shard under ``folder`` (temporary name, then renamed)."""
    records_digest = hashlib.sha256(np.ascontiguousarray(keys).tobytes()).hexdigest()
    final = folder / records_digest[:16]
    staging = folder / f"{STAGING_PREFIX}{records_digest[:16]}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    # Held until the rename: a cleanup takes a staging folder only once its writer died.
    writing = os.open(staging / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(writing, fcntl.LOCK_EX)
    try:
        try:
            _write_shard_files(
                staging,
                records,
                keys,
                tokenizer,
                fingerprint=fingerprint,
                batch_size=batch_size,
                records_digest=records_digest,
            )
        except OSError as error:
            # A full disk: no half shard stays behind to hold the space a rerun needs.
            shutil.rmtree(staging, ignore_errors=True)
            raise OSError(
                error.errno,
                f"train: could not write token cache shard {final} ({error.strerror}); "
                "the partial shard was removed, rerun once there is space",
            ) from error
        if final.is_dir() and TokenShard.open(final, fingerprint["id"]) is None:
            # Shards are renamed into place complete, so this one was damaged afterwards.
            logger.warning("Replacing the damaged token cache shard %s", final)
            shutil.rmtree(final)
        try:
            staging.rename(final)
        except OSError:
            # The same records were cached meanwhile (another process): keep that one.
            shutil.rmtree(staging)
        return final
    finally:
        os.close(writing)


def _write_shard_files(
    staging: Path,
    records: pd.DataFrame,
    keys: np.ndarray,
    tokenizer: PreTrainedTokenizerBase,
    *,
    fingerprint: dict[str, Any],
    batch_size: int,
    records_digest: str,
) -> None:
    """Tokenise ``records`` into the files of a shard in ``staging``, ``meta.json`` last."""
    max_length = int(fingerprint["max_length"])
    offsets = [np.zeros(1, np.int64)]
    prompt_lengths = []
    written = 0
    with (staging / TOKENS_FILE).open("wb") as tokens:
        batches = encode_batches(tokenizer, records, max_length, batch_size)
        progress = tqdm(
            batches,
            total=-(-len(records) // batch_size),
            desc=f"tokenising {len(records)} records",
            unit="batch",
        )
        for batch in progress:
            tokens.write(batch.tokens.tobytes())
            offsets.append(batch.offsets[1:] + written)
            prompt_lengths.append(batch.prompt_lengths)
            written += int(batch.offsets[-1])
        tokens.flush()
        os.fsync(tokens.fileno())
    np.save(staging / OFFSETS_FILE, np.concatenate(offsets))
    np.save(staging / PROMPT_LENGTHS_FILE, np.concatenate(prompt_lengths))
    np.save(staging / KEYS_FILE, keys)
    meta = {
        "fingerprint": fingerprint,
        "records": len(records),
        "tokens": written,
        "records_digest": records_digest,
    }
    (staging / META_FILE).write_text(
        json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8"
    )


@dataclass(frozen=True)
class TokenView:
    """A set of records as rows of cache shards: what a run folder hands to its ranks."""

    shards: list[Path]
    shard_index: np.ndarray  # int32, per record (every record, in order)
    rows: np.ndarray  # int64, per record
    fingerprint_id: str
    tokenized: int  # records this view had to tokenise (not found in the cache)


def _shards(folder: Path, fingerprint_id: str) -> list[TokenShard]:
    if not folder.is_dir():
        return []
    opened = (
        TokenShard.open(path, fingerprint_id)
        for path in sorted(folder.iterdir())
        if path.is_dir() and not path.name.startswith(".")
    )
    return [shard for shard in opened if shard is not None]


def _look_up(
    shards: Sequence[TokenShard], keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Shard number and row of each key (-1 where no shard holds it)."""
    found_shard = np.full(len(keys), -1, dtype=np.int32)
    found_row = np.full(len(keys), -1, dtype=np.int64)
    if not shards or not len(keys):
        return found_shard, found_row
    cached = np.concatenate([np.asarray(shard.keys) for shard in shards])
    shard_of = np.repeat(
        np.arange(len(shards), dtype=np.int32), [len(s.keys) for s in shards]
    )
    row_of = np.concatenate([np.arange(len(shard.keys)) for shard in shards])
    order = np.argsort(cached, kind="stable")
    position = np.minimum(np.searchsorted(cached[order], keys), len(cached) - 1)
    hit = cached[order][position] == keys
    found_shard[hit] = shard_of[order][position[hit]]
    found_row[hit] = row_of[order][position[hit]]
    return found_shard, found_row


def hold(shard: Path) -> None:
    """Take (once per process) a shared lock on ``shard``, kept until this process exits."""
    if shard in _held:
        return
    descriptor = os.open(shard / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(descriptor, fcntl.LOCK_SH)
    _held[shard] = descriptor


def last_used(shard: Path) -> float:
    """When a view last used ``shard`` (its ``.used`` stamp, else when it was written)."""
    for name in (USED_FILE, META_FILE):
        try:
            return (shard / name).stat().st_mtime
        except FileNotFoundError:
            continue
    return 0.0


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _remove_unheld(shard: Path) -> bool:
    """Remove ``shard`` unless a process holds it; whether it was removed."""
    if shard in _held:
        return False
    descriptor = os.open(shard / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        # Renamed first: a reader sees the whole shard or none of it.
        doomed = shard.with_name(
            f"{REMOVING_PREFIX}{shard.name}-{uuid.uuid4().hex[:8]}"
        )
        shard.rename(doomed)
        # Another process's cleanup may take it for a killed removal's leftover and
        # remove files under us: whatever either leaves, the next cleanup removes.
        shutil.rmtree(doomed, ignore_errors=True)
        return True
    finally:
        os.close(descriptor)


def prune(
    root: str | Path, cache: TokenCacheSettings, now: float | None = None
) -> list[Path]:
    """Remove unused shards past ``max_age_days``, then oldest-used past ``max_bytes``.

    Every fingerprint under ``root`` counts; a shard any process holds is kept. Returns
    the shards removed.
    """
    now = time.time() if now is None else now
    folder = Path(root).resolve()
    folders = [
        entry
        for fingerprint in (folder.iterdir() if folder.is_dir() else [])
        if fingerprint.is_dir()
        for entry in fingerprint.iterdir()
        if entry.is_dir()
    ]
    _remove_leftovers(folder, folders)
    shards = [
        shard
        for shard in folders
        if not shard.name.startswith(".") and (shard / META_FILE).is_file()
    ]
    entries = sorted((last_used(shard), _size(shard), shard) for shard in shards)
    total = sum(size for _, size, _ in entries)
    removed = []
    for used, size, shard in entries:  # least recently used first
        too_old = (
            cache.max_age_days is not None and now - used > cache.max_age_days * DAY_S
        )
        too_big = cache.max_bytes is not None and total > cache.max_bytes
        if (too_old or too_big) and _remove_unheld(shard):
            total -= size
            removed.append(shard)
    if removed:
        logger.info(
            "Token cache %s: removed %d unused shard(s); %d bytes left",
            folder,
            len(removed),
            total,
        )
    return removed


def _remove_leftovers(folder: Path, entries: list[Path]) -> None:
    """Remove what killed processes left: builds whose writer is gone, half removals."""
    left = [
        entry
        for entry in entries
        if entry.name.startswith(REMOVING_PREFIX)
        or (entry.name.startswith(STAGING_PREFIX) and _writer_gone(entry))
    ]
    for entry in left:
        # Another cleanup may be removing the same folder: whatever is left goes.
        shutil.rmtree(entry, ignore_errors=True)
    if left:
        logger.info(
            "Token cache %s: removed %d folder(s) a killed build or cleanup left",
            folder,
            len(left),
        )


def _writer_gone(staging: Path) -> bool:
    """Whether nothing holds ``staging``'s lock any more (its build was killed).

    A folder without a lock file is left alone: its writer may be between making it
    and locking it.
    """
    try:
        descriptor = os.open(staging / LOCK_FILE, os.O_RDWR)
    except OSError:  # no lock file yet, or renamed into place meanwhile
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)
    return True


def build_view(
    cache: TokenCacheSettings,
    records: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
) -> TokenView:
    """``records`` as rows of the cache, tokenising only what it lacks; then a cleanup.

    The view's shards are stamped used and held (shared lock) by this process first,
    so :func:`prune` never removes them.
    """
    fingerprint = cache_fingerprint(tokenizer, max_length)
    batch_size = cache.batch_size
    folder = Path(cache.root).resolve() / fingerprint["id"]
    keys = record_keys(records)
    shards = _shards(folder, fingerprint["id"])
    found_shard, found_row = _look_up(shards, keys)
    missing = np.flatnonzero(found_shard < 0)
    tokenized = 0
    if len(missing):
        # Each distinct missing record once, in first-seen order.
        _, first = np.unique(keys[missing], return_index=True)
        new = missing[np.sort(first)]
        logger.info(
            "Token cache %s: %d of %d records are new; tokenising them",
            folder,
            len(new),
            len(keys),
        )
        path = write_shard(
            folder,
            records.iloc[new],
            keys[new],
            tokenizer,
            fingerprint=fingerprint,
            batch_size=batch_size,
        )
        shards = _shards(folder, fingerprint["id"])
        found_shard, found_row = _look_up(shards, keys)
        tokenized = len(new)
        if (found_shard < 0).any():
            raise RuntimeError(f"token cache shard {path} lacks records just written")
    else:
        logger.info(
            "Token cache %s: all %d records already tokenised", folder, len(keys)
        )
    used = np.unique(found_shard)
    for number in used:
        hold(shards[number].path)
        (shards[number].path / USED_FILE).touch()
    prune(cache.root, cache)
    renumber = np.zeros(len(shards), dtype=np.int32)
    renumber[used] = np.arange(len(used), dtype=np.int32)
    return TokenView(
        shards=[shards[number].path for number in used],
        shard_index=renumber[found_shard],
        rows=found_row,
        fingerprint_id=fingerprint["id"],
        tokenized=tokenized,
    )


def save_view(view: TokenView, stem: Path) -> None:
    """Write the view as ``<stem>.json`` and ``<stem>.npy`` (each atomically)."""
    rows = np.stack([view.shard_index.astype(np.int64), view.rows], axis=1)
    buffer = io.BytesIO()
    np.save(buffer, rows)
    write_atomic(stem.with_name(stem.name + ROWS_SUFFIX), buffer.getvalue())
    described = {
        "fingerprint_id": view.fingerprint_id,
        "shards": [str(path) for path in view.shards],
        "records": len(view.rows),
        "tokenized": view.tokenized,
    }
    write_atomic(
        stem.with_name(stem.name + VIEW_SUFFIX), json.dumps(described, indent=2)
    )


def open_view(stem: Path, fingerprint_id: str) -> SFTDataset:
    """The dataset a saved view describes, read from its shards (never written).

    ``fingerprint_id`` is the reader's own (:func:`cache_fingerprint` of its tokenizer):
    a view tokenised otherwise is refused rather than trained on.
    """
    described = json.loads(
        stem.with_name(stem.name + VIEW_SUFFIX).read_text(encoding="utf-8")
    )
    if described["fingerprint_id"] != fingerprint_id:
        raise ValueError(
            f"{stem}{VIEW_SUFFIX} was tokenised with cache fingerprint "
            f"{described['fingerprint_id']}, but this process's tokenizer and "
            f"max_length give {fingerprint_id}; rerun the Kedro node to re-tokenise"
        )
    shards = []
    for path in described["shards"]:
        shard = TokenShard.open(Path(path), fingerprint_id)
        if shard is None:
            raise FileNotFoundError(
                f"token cache shard {path} (named by {stem}{VIEW_SUFFIX}) is missing "
                "or incomplete; rerun the Kedro node to rebuild it"
            )
        hold(shard.path)  # no cleanup removes it while this process trains
        shards.append(shard.arrays)
    rows = np.load(stem.with_name(stem.name + ROWS_SUFFIX), mmap_mode="r")
    shard_index, row = np.asarray(rows[:, 0], np.int32), np.asarray(rows[:, 1])
    answerable = np.ones(len(row), dtype=bool)
    for number, arrays in enumerate(shards):
        mine = shard_index == number
        picked = row[mine]
        lengths = arrays.offsets[picked + 1] - arrays.offsets[picked]
        answerable[mine] = arrays.prompt_lengths[picked] < lengths
    return SFTDataset(
        shards,
        shard_index[answerable],
        row[answerable],
        dropped=int((~answerable).sum()),
    )
