"""The SFT data path: template, tokenisation with answer-only labels, length-grouped batches.

Each record becomes ``encode_example(build_prompt(instruction, input), output + EOS)``
(:mod:`belle_kedro.common.template`): prompt labels are -100 so the loss is on answer
tokens (and the EOS) only; sequences longer than ``max_length`` are truncated on the
right. Records whose prompt alone fills ``max_length`` have no answer token left to
learn from and are dropped (and counted).

Batches are grouped by length by transformers itself (``trainer.train_sampling_strategy:
group_by_length``, which reads each example's ``input_ids``) so little of each padded
batch is padding; :class:`SFTCollator` counts real and padded tokens to report the
waste measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from belle_kedro.common.records import RECORD_COLUMNS, as_text_records
from belle_kedro.common.template import IGNORE_INDEX, build_prompt, encode_example


def tokenize_record(
    tokenizer: PreTrainedTokenizerBase,
    instruction: str,
    input_text: str,
    output: str,
    max_length: int,
) -> dict[str, list[int]]:
    """``input_ids`` and ``labels`` for one record (labels -100 on the prompt)."""
    input_ids, labels = encode_example(
        tokenizer,
        build_prompt(instruction, input_text),
        output.strip(),
        end_with_eos=True,
    )
    return {"input_ids": input_ids[:max_length], "labels": labels[:max_length]}


class SFTDataset(Dataset):
    """Tokenised records (dicts of ``input_ids``/``labels`` lists) with their lengths."""

    def __init__(self, examples: Sequence[dict[str, list[int]]], dropped: int = 0):
        self.examples = list(examples)
        self.lengths = [len(example["input_ids"]) for example in self.examples]
        self.dropped = dropped

    @classmethod
    def from_records(
        cls, records: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> SFTDataset:
        """Tokenise a DataFrame of instruction records; drops records with no answer token left."""
        examples, dropped = [], 0
        text = as_text_records(records, "training records")
        for instruction, input_text, output in text.loc[
            :, list(RECORD_COLUMNS)
        ].itertuples(index=False):
            example = tokenize_record(
                tokenizer, instruction, input_text, output, max_length
            )
            if all(label == IGNORE_INDEX for label in example["labels"]):
                dropped += 1
                continue
            examples.append(example)
        return cls(examples, dropped=dropped)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.examples[index]

    @property
    def token_count(self) -> int:
        return sum(self.lengths)


def padding_waste(real_tokens: int, padded_tokens: int) -> float:
    """Share of the padded batch tensors that is padding (0 when nothing was padded)."""
    return 0.0 if padded_tokens == 0 else 1.0 - real_tokens / padded_tokens


@dataclass
class PaddingStats:
    """Real (non-pad) and padded token counts seen by a collator."""

    real_tokens: int = 0
    padded_tokens: int = 0

    @property
    def waste(self) -> float:
        """Share of the padded batch tensors that is padding."""
        return padding_waste(self.real_tokens, self.padded_tokens)


class SFTCollator:
    """Right-pads a batch to its longest example; padding gets mask 0 and label -100."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.stats = PaddingStats()

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
            input_ids[row, :length] = torch.tensor(example["input_ids"])
            labels[row, :length] = torch.tensor(example["labels"])
            attention_mask[row, :length] = 1
        self.stats.real_tokens += int(attention_mask.sum())
        self.stats.padded_tokens += attention_mask.numel()
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": labels,
        }
