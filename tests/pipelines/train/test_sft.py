"""The SFT data path: answer-only labels on real tokenizers, truncation, padding."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from belle_kedro.common.template import IGNORE_INDEX, build_prompt
from belle_kedro.pipelines.train.sft import PaddingStats, SFTCollator, SFTDataset
from tests.support.project import REPO_ROOT
from tests.support.records import make_records

SRC = REPO_ROOT / "src" / "belle_kedro"


def tokenize_record(tokenizer, instruction, input_text, output, max_length):
    """One record through the training data path (batched encoding, token arrays)."""
    records = pd.DataFrame(
        [{"instruction": instruction, "input": input_text, "output": output}]
    )
    example = SFTDataset.from_records(records, tokenizer, max_length, batch_size=8)[0]
    return {key: ids.tolist() for key, ids in example.items()}


@pytest.mark.parametrize("tokenizer_name", ["smollm2_tokenizer", "byte_tokenizer"])
@pytest.mark.parametrize(
    ("instruction", "input_text", "output"),
    [
        ("把下面的句子翻译成英文。", "今天天气很好。", "The weather is nice today."),
        ("写一句关于秋天的话", "", "秋天的风带着桂花的香气。"),
        ("Name a prime number.", "", "7"),
    ],
)
def test_labels_mask_exactly_the_prompt_token_by_token(
    request, tokenizer_name, instruction, input_text, output
):
    tokenizer = request.getfixturevalue(tokenizer_name)
    example = tokenize_record(
        tokenizer, instruction, input_text, output, max_length=1024
    )
    prompt_ids = tokenizer(
        build_prompt(instruction, input_text), add_special_tokens=False
    )["input_ids"]
    ids, labels = example["input_ids"], example["labels"]

    assert len(ids) == len(labels)
    # The prompt is exactly what inference tokenises, and every prompt token is masked.
    assert ids[: len(prompt_ids)] == prompt_ids
    assert labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    # Every answer token (and the EOS) is a label equal to its input id.
    assert labels[len(prompt_ids) :] == ids[len(prompt_ids) :]
    assert ids[-1] == tokenizer.eos_token_id
    assert IGNORE_INDEX not in labels[len(prompt_ids) :]
    # The labelled tokens decode to the answer itself: no prompt token leaks in.
    answer = tokenizer.decode(labels[len(prompt_ids) : -1])
    assert answer == output
    assert tokenizer.decode(ids[: len(prompt_ids)]) == build_prompt(
        instruction, input_text
    )


def test_bpe_boundary_is_exact_where_joint_tokenisation_would_shift_the_mask(
    smollm2_tokenizer,
):
    """BPE merges the prompt's trailing space into the answer; masking len(prompt) of the joint ids would be off."""
    prompt = build_prompt("Say hi", "")
    joint = smollm2_tokenizer(prompt + "hi", add_special_tokens=False)["input_ids"]
    prompt_ids = smollm2_tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert (
        joint[: len(prompt_ids)] != prompt_ids
    )  # the pitfall is real on this tokenizer
    example = tokenize_record(smollm2_tokenizer, "Say hi", "", "hi", max_length=256)
    assert example["input_ids"][: len(prompt_ids)] == prompt_ids
    assert smollm2_tokenizer.decode(example["labels"][len(prompt_ids) : -1]) == "hi"


def test_right_truncation_keeps_the_prompt_and_drops_answerless_records(byte_tokenizer):
    prompt_len = len(
        byte_tokenizer(build_prompt("写诗", ""), add_special_tokens=False)["input_ids"]
    )
    truncated = tokenize_record(
        byte_tokenizer, "写诗", "", "床前明月光" * 10, max_length=prompt_len + 5
    )
    assert len(truncated["input_ids"]) == prompt_len + 5
    assert truncated["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert (
        truncated["input_ids"][-1] != byte_tokenizer.eos_token_id
    )  # cut on the right, EOS lost
    records = make_records(4).assign(instruction=["很长的指令" * 50, "短", "短", "短"])
    dataset = SFTDataset.from_records(
        records, byte_tokenizer, max_length=64, batch_size=3
    )
    assert dataset.dropped == 1
    assert len(dataset) == 3


def test_the_template_has_exactly_one_source():
    pattern = re.compile(r"Assistant:|Human:")
    owners = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    )
    assert owners == ["common/template.py"]
    from belle_kedro.pipelines.train import model_registry as registry

    assert registry.PROMPT_TEMPLATE == build_prompt("{prompt}")
    assert build_prompt("问", "") == "Human: 问\n\nAssistant: "
    assert build_prompt("问", "材料") == "Human: 问\n材料\n\nAssistant: "


def test_collator_pads_right_with_masked_labels_and_its_mask_counts_waste():
    collator = SFTCollator(pad_token_id=0)
    batch = collator(
        [
            {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
            {"input_ids": [8], "labels": [8]},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    stats = PaddingStats()
    assert (stats.real_tokens, stats.padded_tokens, stats.waste) == (0, 0, 0.0)
    stats.add(batch["attention_mask"])
    stats.add(batch["attention_mask"])
    assert stats.real_tokens == 8
    assert stats.padded_tokens == 12
    assert stats.waste == pytest.approx(2 / 6)
