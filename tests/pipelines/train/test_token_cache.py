"""The token cache: same examples as per-record encoding, fingerprinted, kill-proof, shared."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import gc
import hashlib
import json
import logging
import os
import pickle
import re
import resource
import shutil
import signal
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.normalizers import Lowercase
from tokenizers.pre_tokenizers import Whitespace
from transformers import ByT5Tokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from belle_kedro.common import template
from belle_kedro.common.records import record_bytes
from belle_kedro.common.template import IGNORE_INDEX, build_prompt
from belle_kedro.pipelines.split.nodes import build_variants
from belle_kedro.pipelines.train import launcher, token_cache, trainer
from belle_kedro.pipelines.train.settings import TokenCacheSettings
from belle_kedro.pipelines.train.sft import SFTDataset
from belle_kedro.pipelines.train.token_cache import TokenFile
from tests.support.project import REPO_ROOT, base_parameters
from tests.support.records import make_records
from tests.support.training import tiny_settings


def cache_at(root, batch_size: int, **limits: Any) -> TokenCacheSettings:
    """conf/base's token_cache block at ``root`` (no cleanup unless ``limits`` say so)."""
    return TokenCacheSettings(
        root=str(root),
        batch_size=batch_size,
        max_bytes=limits.get("max_bytes"),
        max_age_days=limits.get("max_age_days"),
    )


def per_record_examples(
    records: pd.DataFrame, tokenizer: Any, max_length: int
) -> tuple[list[tuple[list[int], list[int]]], int]:
    """The data path each rank ran before the cache: two tokenizer calls per record, lists."""
    examples, dropped = [], 0
    for row in records.itertuples(index=False):
        prompt_ids = tokenizer(
            build_prompt(str(row.instruction), str(row.input)), add_special_tokens=False
        )["input_ids"]
        answer_ids = [
            *tokenizer(str(row.output).strip(), add_special_tokens=False)["input_ids"],
            tokenizer.eos_token_id,
        ]
        ids = [*prompt_ids, *answer_ids][:max_length]
        labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_length]
        if all(label == IGNORE_INDEX for label in labels):
            dropped += 1
        else:
            examples.append((ids, labels))
    return examples, dropped


def cached_examples(view_stem, tokenizer, max_length) -> SFTDataset:
    return token_cache.open_view(
        view_stem, token_cache.cache_fingerprint(tokenizer, max_length)["id"]
    )


def varied_records() -> pd.DataFrame:
    records = make_records(40)
    extra = pd.DataFrame(
        [
            # A prompt that alone fills max_length: no answer token left, dropped.
            {"instruction": "很长的指令" * 80, "input": "", "output": "好"},
            # Answer cut on the right (EOS lost), English and mixed scripts.
            {"instruction": "Write a poem.", "input": "", "output": "Roses " * 200},
            {"instruction": "翻译", "input": "Good morning!", "output": " 早上好！ "},
            {"instruction": "空回答", "input": "  ", "output": ""},
            # Special-token text and odd whitespace are encoded as a single call would.
            {
                "instruction": "复述<|im_end|>",
                "input": "a\tb\r\n",
                "output": "<|im_start|> 行",
            },
        ]
    )
    return pd.concat([records, extra], ignore_index=True)


@pytest.mark.parametrize("tokenizer_name", ["smollm2_tokenizer", "byte_tokenizer"])
def test_the_cache_gives_exactly_the_per_record_examples(
    request, tmp_path, tokenizer_name
):
    tokenizer = request.getfixturevalue(tokenizer_name)
    records, max_length = varied_records(), 128
    view = token_cache.build_view(
        cache_at(tmp_path / "cache", 7), records, tokenizer, max_length
    )
    token_cache.save_view(view, tmp_path / "train_tokens")
    dataset = cached_examples(tmp_path / "train_tokens", tokenizer, max_length)

    expected, dropped = per_record_examples(records, tokenizer, max_length)
    assert dataset.dropped == dropped == 1
    assert len(dataset) == len(expected)
    for index, (ids, labels) in enumerate(expected):
        example = dataset[index]
        assert example["input_ids"].tolist() == ids
        assert example["labels"].tolist() == labels
    # Lengths come from the offsets and match the examples (batching by length).
    assert dataset.lengths.tolist() == [len(ids) for ids, _ in expected]
    # Ranks read the token files (no memory map to grow their RSS), and a pickled
    # dataset (DataLoader workers) carries paths only and reads the same examples.
    assert all(isinstance(source.tokens, TokenFile) for source in dataset.sources)
    copied = pickle.loads(pickle.dumps(dataset))
    assert [copied[i]["input_ids"].tolist() for i in range(len(copied))] == [
        ids for ids, _ in expected
    ]


def test_a_token_file_shorter_than_its_offsets_names_the_file(tmp_path, byte_tokenizer):
    records = pd.DataFrame(
        {
            "instruction": ["写一首诗", "解释引力"],
            "input": ["", ""],
            "output": ["春风", "质量吸引"],
        }
    )
    view = token_cache.build_view(
        cache_at(tmp_path / "cache", 8), records, byte_tokenizer, 64
    )
    tokens_file = view.shards[0] / token_cache.TOKENS_FILE
    tokens_file.write_bytes(tokens_file.read_bytes()[:-8])
    token_cache.save_view(view, tmp_path / "train_tokens")
    dataset = cached_examples(tmp_path / "train_tokens", byte_tokenizer, 64)
    # The whole path: every shard's file is called tokens.int32.
    with pytest.raises(OSError, match=re.escape(f"{tokens_file} ends before token")):
        dataset[len(dataset) - 1]


def test_a_changed_fingerprint_rebuilds_and_an_unchanged_one_reuses(
    tmp_path, byte_tokenizer, monkeypatch, caplog
):
    records, root = make_records(12), tmp_path / "cache"

    def build(frame: pd.DataFrame, max_length: int = 128) -> token_cache.TokenView:
        return token_cache.build_view(
            cache_at(root, 5), frame, byte_tokenizer, max_length
        )

    with caplog.at_level(logging.INFO, logger=token_cache.__name__):
        first = build(records)
        assert first.tokenized == 12
        assert build(records).tokenized == 0  # same fingerprint: reused
    folder = first.shards[0].parent
    assert [record.getMessage() for record in caplog.records] == [
        f"Token cache {folder}: 12 of 12 records are new; tokenising them",
        f"Token cache {folder}: all 12 records already tokenised",
    ]
    assert build(records, max_length=64).tokenized == 12  # max_length changed
    assert build(records, max_length=64).fingerprint_id != first.fingerprint_id
    changed = records.copy()
    changed.loc[3, "output"] = "一个改过的回答。"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=token_cache.__name__):
        assert build(changed).tokenized == 1  # only the changed record is new
    assert caplog.records[0].getMessage() == (
        f"Token cache {folder}: 1 of 12 records are new; tokenising them"
    )
    monkeypatch.setattr(template, "ASSISTANT_PREFIX", "\n\n助手：")
    rebuilt = build(records)
    assert rebuilt.tokenized == 12  # the template changed
    assert rebuilt.fingerprint_id != first.fingerprint_id
    meta = json.loads((rebuilt.shards[0] / token_cache.META_FILE).read_text())
    assert meta["fingerprint"]["template"]["without_input"].endswith("助手：")
    assert meta["fingerprint"]["max_length"] == 128
    assert meta["records"] == 12


def test_a_torn_or_foreign_shard_is_ignored(tmp_path, byte_tokenizer, caplog):
    records, root = make_records(10), tmp_path / "cache"
    view = token_cache.build_view(cache_at(root, 4), records, byte_tokenizer, 128)
    shard = view.shards[0]
    folder = shard.parent
    # A complete shard of another tokenizer (same records, other ids) never counts.
    foreign = folder / "0-foreign"
    shutil.copytree(shard, foreign)
    meta = json.loads((foreign / token_cache.META_FILE).read_text())
    meta["fingerprint"]["id"] = "another-tokenizer"
    (foreign / token_cache.META_FILE).write_text(json.dumps(meta))
    (foreign / token_cache.TOKENS_FILE).write_bytes(
        b"\x07\x00\x00\x00" * (len((shard / token_cache.TOKENS_FILE).read_bytes()) // 4)
    )
    # Nor does one whose meta.json names no fingerprint at all.
    unnamed = folder / "1-unnamed"
    shutil.copytree(shard, unnamed)
    (unnamed / token_cache.META_FILE).write_text(json.dumps({"records": 10}))
    # A kill while writing leaves a temporary folder; one without meta.json never counts.
    torn = folder / f".tmp-{shard.name}-dead"
    torn.mkdir()
    (torn / token_cache.TOKENS_FILE).write_bytes(b"\x01\x02")
    # Killed after meta.json but before the rename: whole, yet never renamed into place.
    staged = folder / f".tmp-{shard.name}-killed"
    shutil.copytree(shard, staged)
    (shard / token_cache.META_FILE).unlink()
    caplog.clear()  # only what the second build says; the first build's lines may show
    with caplog.at_level(logging.WARNING, logger=token_cache.__name__):
        again = token_cache.build_view(cache_at(root, 4), records, byte_tokenizer, 128)
    assert again.tokenized == 10
    assert not {foreign, unnamed, torn, staged} & set(again.shards)
    # The same records' shard, damaged after its rename, is replaced (and said so).
    assert again.shards == [shard]
    assert [record.getMessage() for record in caplog.records] == [
        f"Replacing the damaged token cache shard {shard}"
    ]
    token_cache.save_view(again, tmp_path / "view")
    dataset = cached_examples(tmp_path / "view", byte_tokenizer, 128)
    expected, _ = per_record_examples(records, byte_tokenizer, 128)
    assert [dataset[i]["input_ids"].tolist() for i in range(len(dataset))] == [
        ids for ids, _ in expected
    ]
    # A rank whose tokenizer or max_length differs refuses the view.
    with pytest.raises(ValueError, match="cache fingerprint"):
        cached_examples(tmp_path / "view", byte_tokenizer, 64)


class CountingTokenizer:
    """A real tokenizer that counts the texts it encodes."""

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer
        self.texts = 0

    def __call__(self, texts: list[str], **kwargs: Any) -> Any:
        self.texts += len(texts)
        return self._tokenizer(texts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def __len__(self) -> int:
        return len(self._tokenizer)


def test_nested_variants_tokenise_each_record_once(tmp_path, byte_tokenizer):
    """Split's variants (with BELLE's mix-in in every one) share one cache, in any order."""
    params = {
        **base_parameters("split"),
        "variant_sizes": {"small": 10, "medium": 30, "large": 50, "xlarge": 80},
        "mix_in": {"mode": "every_variant", "size": 6},
    }
    pool = make_records(80, seed=3)
    variants = build_variants(
        pool, make_records(4, seed=9), make_records(6, seed=5), params
    )
    tokenizer = CountingTokenizer(byte_tokenizer)
    tokenized: dict[str, int] = {}
    expected_new: dict[str, int] = {}
    seen: set[tuple[Any, ...]] = set()
    for name in ("medium", "small", "xlarge", "large"):  # not size order
        view = token_cache.build_view(
            cache_at(tmp_path / "cache", 16),
            variants[name],
            # A duck-typed wrapper that forwards to the real tokenizer and counts.
            cast(PreTrainedTokenizerBase, tokenizer),
            128,
        )
        token_cache.save_view(view, tmp_path / name)
        tokenized[name] = view.tokenized
        keys = {
            tuple(key[1:])
            for key in variants[name]
            .loc[:, ["instruction", "input", "output"]]
            .itertuples()
        }
        expected_new[name], seen = len(keys - seen), seen | keys
    distinct = len(seen)
    assert tokenized == expected_new
    assert tokenized["small"] == tokenized["large"] == 0  # nested in earlier ones
    assert sum(tokenized.values()) == distinct
    # Two texts (prompt and answer) per record tokenised, nothing more.
    assert tokenizer.texts == 2 * distinct
    # The small variant reads its slice of the same shards: same examples, in order.
    small = cached_examples(tmp_path / "small", tokenizer, 128)
    expected, _ = per_record_examples(variants["small"], byte_tokenizer, 128)
    assert [small[i]["input_ids"].tolist() for i in range(len(small))] == [
        ids for ids, _ in expected
    ]


def test_the_run_folder_hands_the_ranks_views_not_records(tmp_path, byte_tokenizer):
    config = tiny_settings()
    train, holdout = make_records(16), make_records(4, seed=1)
    run_dir = launcher.prepare_run_dir("small", train, holdout, config)
    job = trainer.read_job(run_dir)
    assert job.tokenized_records == {"train": 16, "eval": 4}
    described = json.loads((run_dir / f"{trainer.TRAIN_TOKENS}.json").read_text())
    root = (tmp_path / config.token_cache.root).resolve()
    assert all(path.startswith(str(root)) for path in described["shards"])
    # A second variant with the same records (another fingerprint) tokenises nothing.
    other = launcher.prepare_run_dir(
        "medium", train, holdout, dataclasses.replace(config, seed=1)
    )
    assert trainer.read_job(other).tokenized_records == {"train": 0, "eval": 0}


HOLD_SCRIPT = """
import sys, time
from pathlib import Path
from belle_kedro.pipelines.train import token_cache
token_cache.hold(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(60)
"""


def build_shards(root, byte_tokenizer, count: int) -> list:
    """``count`` shards, one per build of new records, used one second apart."""
    shards = []
    for number in range(count):
        view = token_cache.build_view(
            cache_at(root, 8), make_records(6, seed=100 + number), byte_tokenizer, 128
        )
        shards.append(view.shards[0])
        stamp = time.time() - (count - number) * 86400  # shard 0 used longest ago
        os.utime(shards[-1] / token_cache.USED_FILE, (stamp, stamp))
    return shards


def test_cleanup_removes_least_recently_used_first_and_never_a_held_shard(
    tmp_path, byte_tokenizer
):
    import subprocess
    import sys

    root = tmp_path / "cache"
    shards = build_shards(root, byte_tokenizer, 4)
    # This process built them, so it holds them: forget that, as a later process would.
    for shard in shards:
        os.close(token_cache._held.pop(shard))
    sizes = [sum(f.stat().st_size for f in s.rglob("*") if f.is_file()) for s in shards]
    # Another running job holds the oldest shard (a shared flock, as its ranks do).
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(shards[0])],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
        cwd=REPO_ROOT,  # the project root (also where mutmut, if it runs this, reads its config)
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        cap = sizes[2] + sizes[3] + sizes[0]  # room for the two newest and the held one
        removed = token_cache.prune(root, cache_at(root, 8, max_bytes=cap))
    finally:
        holder.kill()
        holder.wait()
    # Least recently used first (shard 0), but it is held, so shard 1 goes instead.
    assert removed == [shards[1]]
    assert [s.is_dir() for s in shards] == [True, False, True, True]
    # Once nobody holds it, an age limit takes it (and keeps what was used lately).
    removed = token_cache.prune(root, cache_at(root, 8, max_age_days=3.5))
    assert removed == [shards[0]]
    assert [s.is_dir() for s in shards] == [False, False, True, True]


def test_a_build_keeps_its_own_shards_and_stamps_them_used(tmp_path, byte_tokenizer):
    root = tmp_path / "cache"
    records = make_records(6, seed=1)
    first = token_cache.build_view(cache_at(root, 8), records, byte_tokenizer, 128)
    stamp = time.time() - 30 * 86400
    os.utime(first.shards[0] / token_cache.USED_FILE, (stamp, stamp))
    os.close(token_cache._held.pop(first.shards[0]))
    # Reused a month later under a 7-day limit and a zero size cap: kept, restamped.
    again = token_cache.build_view(
        cache_at(root, 8, max_bytes=0, max_age_days=7), records, byte_tokenizer, 128
    )
    assert again.tokenized == 0 and again.shards == first.shards
    assert first.shards[0].is_dir()
    assert time.time() - token_cache.last_used(first.shards[0]) < 60
    # Held by this process: a cleanup neither removes it nor says it did.
    assert token_cache.prune(root, cache_at(root, 8, max_bytes=0)) == []
    assert first.shards[0].is_dir()


def test_records_lacking_a_column_are_refused_as_training_records():
    with pytest.raises(ValueError, match=r"^training records lacks .*'output'"):
        token_cache.record_keys(pd.DataFrame({"instruction": ["a"], "input": [""]}))


def test_a_record_key_is_the_16_byte_blake2b_of_its_fields():
    """keys.npy's documented format: a cache written by an earlier build is still found."""
    records = make_records(3)
    expected = [
        hashlib.blake2b(
            record_bytes(str(row.instruction), str(row.input), str(row.output)),
            digest_size=16,
        ).digest()
        for row in records.itertuples(index=False)
    ]
    assert token_cache.record_keys(records).tolist() == expected


def word_tokenizer(lowercase: bool) -> PreTrainedTokenizerFast:
    vocab = {"[UNK]": 0, "</s>": 1, "hello": 2, "Hello": 3}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = Whitespace()
    if lowercase:
        backend.normalizer = Lowercase()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>")


def test_tokenizers_that_encode_differently_never_share_a_fingerprint():
    # Fast: the same vocabulary, but one lowercases first ("Hello" -> "hello").
    fast = [word_tokenizer(lowercase) for lowercase in (False, True)]
    assert [t("Hello")["input_ids"] for t in fast] == [[3], [2]]
    # Slow (the byte tokenizer): the same size, but another added token.
    slow = [ByT5Tokenizer(), ByT5Tokenizer()]
    slow[0].add_tokens(["甲"])
    slow[1].add_tokens(["乙"])
    assert len(slow[0]) == len(slow[1])
    for pair in (fast, slow):
        ids = {token_cache.cache_fingerprint(t, 128)["id"] for t in pair}
        assert len(ids) == 2


def test_a_token_file_reads_exact_slices_and_closes_its_descriptor(tmp_path):
    path = tmp_path / token_cache.TOKENS_FILE
    path.write_bytes(np.arange(6, dtype=np.int32).tobytes())

    def open_on_path() -> int:
        return sum(
            os.readlink(f"/proc/self/fd/{fd}") == str(path)
            for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")
        )

    tokens = TokenFile(path, 6)
    assert tokens[1:4].tolist() == [1, 2, 3]
    assert tokens[3:3].tolist() == [] and tokens[6:].tolist() == []
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: only contiguous"):
        tokens[::2]
    assert open_on_path() == 1
    del tokens
    gc.collect()
    assert open_on_path() == 0  # a rank opening many shards leaks no descriptors


def test_a_view_over_two_shards_reads_each_records_own_shard(tmp_path, byte_tokenizer):
    root = tmp_path / "cache"
    long_prompt = pd.DataFrame(
        [{"instruction": "很长的指令" * 80, "input": "", "output": "好"}]
    )
    first = pd.concat([make_records(5), long_prompt], ignore_index=True)
    token_cache.build_view(cache_at(root, 4), first, byte_tokenizer, 128)
    both = pd.concat([make_records(3, seed=7), first], ignore_index=True)
    view = token_cache.build_view(cache_at(root, 4), both, byte_tokenizer, 128)
    assert len(view.shards) == 2 and view.tokenized == 3
    token_cache.save_view(view, tmp_path / "view")
    dataset = cached_examples(tmp_path / "view", byte_tokenizer, 128)
    expected, dropped = per_record_examples(both, byte_tokenizer, 128)
    assert dataset.dropped == dropped == 1
    assert [dataset[i]["input_ids"].tolist() for i in range(len(dataset))] == [
        ids for ids, _ in expected
    ]
    # A shard removed behind the view's back: the error says what to do.
    shutil.rmtree(view.shards[1])
    with pytest.raises(
        FileNotFoundError,
        match=f"^token cache shard {re.escape(str(view.shards[1]))} .* is missing or "
        "incomplete; rerun the Kedro node to rebuild it$",
    ):
        cached_examples(tmp_path / "view", byte_tokenizer, 128)


def test_a_shard_a_killed_build_never_held_is_still_pruned(tmp_path, byte_tokenizer):
    """Killed between writing a shard and holding it: nobody holds its lock file, or
    (written before builds locked their folder) it has none."""
    root = tmp_path / "cache"
    unheld = write_shard_of(root, make_records(4), byte_tokenizer)
    unlocked = write_shard_of(root, make_records(4, seed=1), byte_tokenizer)
    (unlocked / token_cache.LOCK_FILE).unlink()
    removed = token_cache.prune(root, cache_at(root, 8, max_bytes=0))
    assert sorted(removed) == sorted([unheld, unlocked])
    assert list(unheld.parent.iterdir()) == []  # removed, not only renamed away


def test_a_shard_is_written_in_its_documented_format(tmp_path, byte_tokenizer, capsys):
    records = make_records(12)
    view = token_cache.build_view(
        cache_at(tmp_path / "cache", 5), records, byte_tokenizer, 128
    )
    shard = view.shards[0]
    keys = token_cache.record_keys(records)
    digest = hashlib.sha256(keys.tobytes()).hexdigest()
    meta = json.loads((shard / token_cache.META_FILE).read_text())
    assert shard.name == digest[:16] and meta["records_digest"] == digest
    assert meta["records"] == 12
    offsets = np.load(shard / token_cache.OFFSETS_FILE)
    assert offsets.dtype == np.int64 and offsets[0] == 0
    assert offsets[-1] == meta["tokens"]
    tokens_bytes = (shard / token_cache.TOKENS_FILE).stat().st_size
    assert tokens_bytes == 4 * meta["tokens"]
    assert np.load(shard / token_cache.PROMPT_LENGTHS_FILE).dtype == np.int32
    assert np.load(shard / token_cache.KEYS_FILE).tolist() == keys.tolist()
    assert view.shard_index.dtype == np.int32 and view.rows.dtype == np.int64
    # The progress bar counts batches of 5: 12 records in 3.
    progress = capsys.readouterr().err
    assert "tokenising 12 records: 100%" in progress
    assert re.search(r" 3/3 \[[^]]*[\d.](batch/s|s/batch)\]", progress)


def test_a_write_error_while_tokenising_leaves_no_partial_shard(
    tmp_path, byte_tokenizer
):
    """A real write error (a 4 KiB file-size limit, as a full disk gives ENOSPC)."""
    records, root = make_records(40), tmp_path / "cache"
    folder = root / token_cache.cache_fingerprint(byte_tokenizer, 128)["id"]
    digest = hashlib.sha256(token_cache.record_keys(records).tobytes()).hexdigest()
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Past the limit a write fails with EFBIG, unless SIGXFSZ kills the process first.
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))
    try:
        with pytest.raises(OSError) as raised:
            token_cache.build_view(cache_at(root, 8), records, byte_tokenizer, 128)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert raised.value.errno == errno.EFBIG
    assert raised.value.strerror == (
        f"train: could not write token cache shard {folder / digest[:16]} "
        "(File too large); the partial shard was removed, rerun once there is space"
    )
    assert list(folder.iterdir()) == []
    again = token_cache.build_view(cache_at(root, 8), records, byte_tokenizer, 128)
    assert again.tokenized == 40


def write_shard_of(root, records: pd.DataFrame, tokenizer) -> Path:
    """``records`` written as one shard, as a build that looked them up missing does."""
    fingerprint = token_cache.cache_fingerprint(tokenizer, 128)
    return token_cache.write_shard(
        root / fingerprint["id"],
        records,
        token_cache.record_keys(records),
        tokenizer,
        fingerprint=fingerprint,
        batch_size=8,
    )


def test_a_shard_another_process_wrote_meanwhile_is_kept(
    tmp_path, byte_tokenizer, caplog
):
    records = make_records(4)
    first = write_shard_of(tmp_path, records, byte_tokenizer)
    inode = first.stat().st_ino
    with caplog.at_level(logging.WARNING, logger=token_cache.__name__):
        assert write_shard_of(tmp_path, records, byte_tokenizer) == first
    assert caplog.records == []
    assert first.stat().st_ino == inode
    assert [path.name for path in first.parent.iterdir()] == [first.name]


def test_a_shard_of_other_records_under_the_name_is_an_error(tmp_path, byte_tokenizer):
    root, records = tmp_path / "cache", make_records(4)
    other = write_shard_of(root, make_records(3, seed=5), byte_tokenizer)
    digest = hashlib.sha256(token_cache.record_keys(records).tobytes()).hexdigest()
    named = other.with_name(digest[:16])
    shutil.copytree(other, named)
    with pytest.raises(
        RuntimeError,
        match=f"^token cache shard {re.escape(str(named))} lacks records just written$",
    ):
        token_cache.build_view(cache_at(root, 8), records, byte_tokenizer, 128)


def test_records_two_shards_hold_are_read_from_the_first(tmp_path, byte_tokenizer):
    """Builds that raced can both cache a record: each is read from the first shard."""
    # More than numpy's small-array sort (which happens to be stable) handles.
    records = make_records(300)
    shards = sorted(
        [
            write_shard_of(tmp_path, records, byte_tokenizer),
            write_shard_of(tmp_path, records.iloc[:-1], byte_tokenizer),
        ]
    )
    view = token_cache.build_view(
        cache_at(tmp_path, 8), records.iloc[:-1], byte_tokenizer, 128
    )
    assert view.tokenized == 0 and view.shards == shards[:1]


def test_a_shard_no_view_used_yet_ages_from_when_it_was_written(
    tmp_path, byte_tokenizer
):
    """Another build's shard between its rename and its first use: no ``.used`` yet."""
    shard = write_shard_of(tmp_path, make_records(4), byte_tokenizer)
    assert not (shard / token_cache.USED_FILE).exists()
    written = (shard / token_cache.META_FILE).stat().st_mtime
    assert token_cache.last_used(shard) == written
    assert token_cache.last_used(tmp_path / "removed") == 0.0  # neither file: never
    assert token_cache.prune(tmp_path, cache_at(tmp_path, 8, max_age_days=1)) == []
    assert shard.is_dir()


def test_a_cleanup_ages_shards_by_the_time_it_is_given(tmp_path, byte_tokenizer):
    shard = write_shard_of(tmp_path, make_records(4), byte_tokenizer)
    written = 1_700_000_000  # whole seconds: exact sums below
    os.utime(shard / token_cache.META_FILE, (written, written))
    week = cache_at(tmp_path, 8, max_age_days=7)
    # Exactly a week unused is not past the limit; a second more is.
    assert token_cache.prune(tmp_path, week, now=written + 7 * 86400) == []
    assert token_cache.prune(tmp_path, week, now=written + 7 * 86400 + 1) == [shard]
    # No cache folder at all: nothing to remove.
    assert (
        token_cache.prune(tmp_path / "none", cache_at(tmp_path, 8, max_bytes=0)) == []
    )


def test_a_shard_still_being_written_is_never_pruned(tmp_path, byte_tokenizer):
    shard = write_shard_of(tmp_path, make_records(4), byte_tokenizer)
    # Another build's shard before its meta.json (written last) and its rename.
    staging = shard.with_name(".tmp-0123456789abcdef-01234567")
    staging.mkdir()
    (staging / token_cache.TOKENS_FILE).write_bytes(bytes(4096))
    assert token_cache.prune(tmp_path, cache_at(tmp_path, 8, max_bytes=0)) == [shard]
    assert staging.is_dir()


def test_a_size_cap_removes_the_least_recently_used_until_the_rest_fit(
    tmp_path, byte_tokenizer, caplog
):
    root = tmp_path / "cache"
    shards = build_shards(root, byte_tokenizer, 3)
    for shard in shards:
        os.close(token_cache._held.pop(shard))
    sizes = [sum(f.stat().st_size for f in s.rglob("*") if f.is_file()) for s in shards]
    caplog.clear()  # only what the prune says, not the builds before it
    with caplog.at_level(logging.INFO, logger=token_cache.__name__):
        removed = token_cache.prune(root, cache_at(root, 8, max_bytes=max(sizes)))
    assert removed == shards[:2]
    assert [record.getMessage() for record in caplog.records] == [
        f"Token cache {root.resolve()}: removed 2 unused shard(s); {sizes[2]} bytes left"
    ]


def test_a_cleanup_during_a_build_never_takes_the_shard_being_written(
    tmp_path, byte_tokenizer, monkeypatch
):
    write_files = token_cache._write_shard_files
    during: list[list[Path]] = []

    def then_clean_up(staging: Path, *args: Any, **kwargs: Any) -> None:
        write_files(staging, *args, **kwargs)
        # Another job's cleanup between meta.json and the rename, with a cap of 0.
        assert (staging / token_cache.META_FILE).is_file()
        during.append(token_cache.prune(tmp_path, cache_at(tmp_path, 8, max_bytes=0)))

    monkeypatch.setattr(token_cache, "_write_shard_files", then_clean_up)
    shard = write_shard_of(tmp_path, make_records(4), byte_tokenizer)
    assert during == [[]] and token_cache.TokenShard.open(shard, shard.parent.name)
    assert [path.name for path in shard.parent.iterdir()] == [shard.name]


def test_a_cleanup_removes_what_killed_builds_and_cleanups_left(
    tmp_path, byte_tokenizer, caplog
):
    shard = write_shard_of(tmp_path, make_records(4), byte_tokenizer)
    folder = shard.parent

    def leftover(name: str, locked: bool) -> Path:
        path = folder / name
        shutil.copytree(shard, path)  # whole, meta.json and all
        if not locked:
            (path / token_cache.LOCK_FILE).unlink(missing_ok=True)
        return path

    killed_build = leftover(".tmp-0123456789abcdef-dead", locked=True)
    killed_removal = leftover(".removing-0123456789abcdef-dead", locked=True)
    just_made = leftover(".tmp-0123456789abcdef-new", locked=False)  # not locked yet
    running = leftover(".tmp-0123456789abcdef-alive", locked=True)
    writer = os.open(running / token_cache.LOCK_FILE, os.O_RDWR)
    fcntl.flock(writer, fcntl.LOCK_EX)  # a build still writing holds it
    try:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=token_cache.__name__):
            removed = token_cache.prune(tmp_path, cache_at(tmp_path, 8))
    finally:
        os.close(writer)
    assert removed == []  # no limit: the shards stay; only the leftovers go
    assert not killed_build.exists() and not killed_removal.exists()
    assert just_made.is_dir() and running.is_dir() and shard.is_dir()
    assert [record.getMessage() for record in caplog.records] == [
        f"Token cache {tmp_path.resolve()}: removed 2 folder(s) a killed build or "
        "cleanup left"
    ]


def test_a_leftover_another_cleanup_removes_first_is_no_error(
    tmp_path, byte_tokenizer, monkeypatch
):
    shard = write_shard_of(tmp_path, make_records(4), byte_tokenizer)
    removing = shard.parent / ".removing-0123456789abcdef-dead"
    staging = shard.parent / ".tmp-0123456789abcdef-dead"
    shutil.copytree(shard, removing)
    shutil.copytree(shard, staging)
    writer_gone = token_cache._writer_gone

    def meanwhile_another_cleanup(path: Path) -> bool:
        shutil.rmtree(removing, ignore_errors=True)  # it got there first
        return writer_gone(path)

    monkeypatch.setattr(token_cache, "_writer_gone", meanwhile_another_cleanup)
    assert token_cache.prune(tmp_path, cache_at(tmp_path, 8)) == []
    assert not removing.exists() and not staging.exists() and shard.is_dir()


def test_a_removal_raced_by_another_cleanup_is_finished_by_the_next(
    tmp_path, byte_tokenizer, monkeypatch
):
    shard = write_shard_of(tmp_path, make_records(4), byte_tokenizer)
    folder = shard.parent
    unlink = os.unlink

    def taken_first(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(path) == token_cache.META_FILE:  # rmtree unlinks by dir_fd
            raise FileNotFoundError(errno.ENOENT, "removed by another cleanup", path)
        unlink(path, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(os, "unlink", taken_first)
        assert token_cache.prune(tmp_path, cache_at(tmp_path, 8, max_bytes=0)) == [
            shard
        ]
    assert not shard.exists()
    assert [path.name.startswith(".removing-") for path in folder.iterdir()] == [True]
    token_cache.prune(tmp_path, cache_at(tmp_path, 8))  # the next cleanup, any limits
    assert list(folder.iterdir()) == []


def test_a_folder_that_is_no_shard_is_never_pruned(tmp_path, byte_tokenizer):
    shard = write_shard_of(tmp_path, make_records(4), byte_tokenizer)
    stranger = shard.parent / "someone-elses-folder"  # no meta.json: not a shard
    stranger.mkdir()
    (stranger / "notes.txt").write_text("kept")
    assert token_cache.prune(tmp_path, cache_at(tmp_path, 8, max_bytes=0)) == [shard]
    assert (stranger / "notes.txt").read_text() == "kept"
