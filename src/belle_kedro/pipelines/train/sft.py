"""The SFT data path: template, tokenisation with answer-only labels, length-grouped batches.

Each record becomes ``encode_halves(build_prompt(instruction, input), output + EOS)``
(:mod:`belle_kedro.common.template`), a batch of records at a time: prompt labels are
-100 so the loss is on answer tokens (and the EOS) only; sequences longer than
``max_length`` are truncated on the right. Records whose prompt alone fills
``max_length`` have no answer token left to learn from and are dropped (and counted).

Tokenised records are :class:`TokenArrays`: every record's ids end to end in one int32
array, int64 offsets and each record's prompt length. :mod:`.token_cache` keeps them on
disk; :class:`SFTDataset` reads examples from them lazily.

Batches are grouped by length (``trainer.train_sampling_strategy: group_by_length``:
transformers' ``LengthGroupedSampler``, fed the lengths the offsets give) so little of
each padded batch is padding; :class:`PaddingStats` counts real and padded tokens of
the batches trained on to report the waste measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from belle_kedro.common.records import as_text_records
from belle_kedro.common.template import IGNORE_INDEX, build_prompt, encode_halves

TOKEN_DTYPE = np.int32


class TokenSlices(Protocol):
    """Token ids read by contiguous slice, like an array but maybe from disk on demand.

    :class:`~belle_kedro.pipelines.train.token_cache.TokenFile` is one (a cache
    shard's ids, read with ``os.pread``); defined here so this module needs no import
    of the cache that builds on it.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, span: slice) -> np.ndarray: ...


@dataclass(frozen=True)
class TokenArrays:
    """Tokenised records: ids of record ``i`` are ``tokens[offsets[i]:offsets[i + 1]]``.

    The first ``prompt_lengths[i]`` of them are the prompt (masked in the labels).
    The arrays may be in memory or read from a token cache (``tokens`` then is a
    :class:`TokenSlices` reading the cache file, sliced the same way).
    """

    tokens: np.ndarray | TokenSlices  # int32
    offsets: np.ndarray  # int64, one more than there are records
    prompt_lengths: np.ndarray  # int32, at most the record's (truncated) length

    def __len__(self) -> int:
        return len(self.prompt_lengths)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def answerable(self) -> np.ndarray:
        """Whether each record kept an answer token within ``max_length``."""
        return self.prompt_lengths < self.lengths


def encode_batches(
    tokenizer: PreTrainedTokenizerBase,
    records: pd.DataFrame,
    max_length: int,
    batch_size: int,
) -> Iterator[TokenArrays]:
    """The records tokenised ``batch_size`` at a time (offsets start at 0 in each batch)."""
    text = as_text_records(records, "training records")
    for start in range(0, len(text), batch_size):
        # Prompts and answers of one batch at a time: a 10M-record variant never
        # lives as Python strings.
        batch = text.iloc[start : start + batch_size]
        prompt_ids, answer_ids = encode_halves(
            tokenizer,
            [
                build_prompt(instruction, input_text)
                for instruction, input_text in zip(
                    batch["instruction"], batch["input"], strict=True
                )
            ],
            [output.strip() for output in batch["output"]],
            end_with_eos=True,
        )
        rows = [
            (prompt + answer)[:max_length]
            for prompt, answer in zip(prompt_ids, answer_ids, strict=True)
        ]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        yield TokenArrays(
            tokens=np.fromiter(
                chain.from_iterable(rows), dtype=TOKEN_DTYPE, count=int(offsets[-1])
            ),
            offsets=offsets,
            prompt_lengths=np.minimum(
                np.fromiter(map(len, prompt_ids), dtype=np.int64, count=len(rows)),
                lengths,
            ).astype(TOKEN_DTYPE),
        )


def concatenate(parts: Sequence[TokenArrays]) -> TokenArrays:
    """One :class:`TokenArrays` holding ``parts`` in order."""
    if not parts:
        return TokenArrays(
            np.zeros(0, TOKEN_DTYPE), np.zeros(1, np.int64), np.zeros(0, TOKEN_DTYPE)
        )
    starts = np.cumsum([0] + [int(part.offsets[-1]) for part in parts[:-1]])
    return TokenArrays(
        tokens=np.concatenate([part.tokens for part in parts]),
        offsets=np.concatenate(
            [np.zeros(1, np.int64)]
            + [
                part.offsets[1:] + start
                for part, start in zip(parts, starts, strict=True)
            ]
        ),
        prompt_lengths=np.concatenate([part.prompt_lengths for part in parts]),
    )


class SFTDataset(Dataset):
    """Examples (``input_ids``, ``labels`` with the prompt masked) read lazily from token arrays.

    Example ``i`` is row ``rows[i]`` of ``sources[source_index[i]]``; only records with
    an answer token are listed (``dropped`` counts the others). ``lengths`` comes from
    the offsets, so batching by length tokenises nothing.
    """

    def __init__(
        self,
        sources: Sequence[TokenArrays],
        source_index: np.ndarray,
        rows: np.ndarray,
        dropped: int = 0,
    ):
        self.sources = list(sources)
        self.source_index = np.asarray(source_index, dtype=np.int32)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.dropped = dropped
        self.lengths = np.zeros(len(self.rows), dtype=np.int64)
        for number, source in enumerate(self.sources):
            mine = self.source_index == number
            picked = self.rows[mine]
            self.lengths[mine] = source.offsets[picked + 1] - source.offsets[picked]

    @classmethod
    def from_arrays(cls, arrays: TokenArrays) -> SFTDataset:
        """The answerable records of ``arrays``, in order."""
        answerable = arrays.answerable
        rows = np.flatnonzero(answerable)
        return cls(
            [arrays],
            np.zeros(len(rows), np.int32),
            rows,
            dropped=int((~answerable).sum()),
        )

    @classmethod
    def from_records(
        cls,
        records: pd.DataFrame,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        *,
        batch_size: int,
    ) -> SFTDataset:
        """Tokenise a DataFrame of instruction records in memory (no cache)."""
        return cls.from_arrays(
            concatenate(
                list(encode_batches(tokenizer, records, max_length, batch_size))
            )
        )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        source = self.sources[int(self.source_index[index])]
        row = int(self.rows[index])
        start, end = int(source.offsets[row]), int(source.offsets[row + 1])
        input_ids = np.array(source.tokens[start:end], dtype=np.int64)
        labels = input_ids.copy()
        labels[: int(source.prompt_lengths[row])] = IGNORE_INDEX
        return {"input_ids": input_ids, "labels": labels}

    @property
    def token_count(self) -> int:
        return int(self.lengths.sum())


def padding_waste(real_tokens: int, padded_tokens: int) -> float:
    """Share of the padded batch tensors that is padding (0 when nothing was padded)."""
    return 0.0 if padded_tokens == 0 else 1.0 - real_tokens / padded_tokens


class PaddingStats:
    """Real (non-pad) and padded tokens of the batches counted so far.

    Counted from each batch's attention mask where the batch is used (the training
    loop's process, not a DataLoader worker), summed on the mask's device so a GPU
    batch costs no synchronisation; reading a figure does.
    """

    def __init__(self) -> None:
        self._counts: torch.Tensor | None = None

    def add(self, attention_mask: torch.Tensor) -> None:
        """Count one batch: its mask's ones are real tokens, its size the padded ones."""
        counts = torch.stack(
            (
                attention_mask.sum().to(torch.long),
                torch.tensor(
                    attention_mask.numel(),
                    dtype=torch.long,
                    device=attention_mask.device,
                ),
            )
        )
        self._counts = counts if self._counts is None else self._counts + counts

    def as_tensor(self, device: torch.device) -> torch.Tensor:
        """``[real, padded]`` as a long tensor on ``device`` (for a sum over ranks)."""
        if self._counts is None:
            return torch.zeros(2, dtype=torch.long, device=device)
        return self._counts.to(device)

    @property
    def real_tokens(self) -> int:
        return 0 if self._counts is None else int(self._counts[0])

    @property
    def padded_tokens(self) -> int:
        return 0 if self._counts is None else int(self._counts[1])

    @property
    def waste(self) -> float:
        """Share of the padded batch tensors that is padding."""
        return padding_waste(self.real_tokens, self.padded_tokens)


class SFTCollator:
    """Right-pads a batch to its longest example; padding gets mask 0 and label -100."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(
        self, batch: Sequence[Mapping[str, Sequence[int]]]
    ) -> dict[str, torch.Tensor]:
        longest = max(len(example["input_ids"]) for example in batch)
        if self.pad_to_multiple_of:
            longest = (
                math.ceil(longest / self.pad_to_multiple_of) * self.pad_to_multiple_of
            )
        input_ids = torch.full(
            (len(batch), longest), self.pad_token_id, dtype=torch.long
        )
        labels = torch.full((len(batch), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, example in enumerate(batch):
            length = len(example["input_ids"])
            input_ids[row, :length] = torch.as_tensor(example["input_ids"])
            labels[row, :length] = torch.as_tensor(example["labels"])
            attention_mask[row, :length] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
        }
