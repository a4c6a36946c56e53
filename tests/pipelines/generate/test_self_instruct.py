"""Prompt building (deterministic few-shot requests) and BELLE-format answer parsing."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from belle_kedro.pipelines.generate.self_instruct import (
    build_request,
    format_examples,
    parse_tasks,
    sample_examples,
)

SEEDS = pd.DataFrame(
    {
        "id": [f"seed_task_{i}" for i in range(6)],
        "instruction": [f"指令{i}" for i in range(6)],
        "instances": [
            [{"input": "" if i % 2 else f"输入{i}", "output": f"输出{i}"}]
            for i in range(6)
        ],
    }
)
TEMPLATE = {"system": "系统", "prompt": "写 {num_tasks} 条任务 {braces}\n{examples}"}


def _request(index: int, seed: int = 7, **overrides):
    arguments = dict(
        random_seed=seed,
        few_shot_k=3,
        num_tasks=5,
        template=TEMPLATE,
        sampling={"temperature": 1.0, "max_tokens": 64, "stop": None},
        model="m",
    )
    return build_request(SEEDS, index, **{**arguments, **overrides})


def test_requests_are_a_function_of_seed_and_index():
    assert _request(3) == _request(3)
    assert _request(3).request_id != _request(4).request_id
    assert _request(3, seed=8).request_id != _request(3).request_id
    assert _request(3, model="other").request_id != _request(3).request_id
    assert _request(3).request_id.startswith("gen-7-0000003-")
    request = _request(3)
    assert request.system == "系统" and "写 5 条任务 {braces}" in request.prompt
    assert "stop" not in request.params and isinstance(request.params["seed"], int)
    assert "seed" not in _request(3, send_seed=False).params
    assert (
        len(set(request.meta["seed_ids"])) == 3 and request.meta["request_index"] == 3
    )


def test_few_shot_block_follows_belles_layout():
    examples = sample_examples(SEEDS, random.Random(0), 3)
    block = format_examples(examples)
    assert block.startswith("###\n1. 指令: ")
    assert block.endswith("###\n4. 指令:")
    for example, number in zip(examples, (1, 2, 3), strict=True):
        shown_input = example.input or "<无输入>"
        assert (
            f"{number}. 指令: {example.instruction}\n{number}. 输入:\n{shown_input}\n{number}. 输出:\n"
            in block
        )
    with pytest.raises(ValueError, match="at least 3"):
        sample_examples(SEEDS.head(2), random.Random(0), 3)


def test_parse_continuation_labels_colons_and_no_input():
    text = (
        " 把这句话改得更礼貌。\n4. 输入:\n把文件给我。\n4. 输出:\n麻烦您把文件发给我，谢谢。\n"
        "###\n5. 指令：列出三种水果。\n5. 输入：\n<无输入>\n5. 输出：\n苹果、香蕉、橙子。\n"
        "###\n6. 指令: 多行\n指令\n6. 输入:\n＜无输入＞\n6. 输出:\n第一行\n第二行\n"
    )
    tasks = parse_tasks(text, "stop")
    assert tasks == [
        {
            "instruction": "把这句话改得更礼貌。",
            "input": "把文件给我。",
            "output": "麻烦您把文件发给我，谢谢。",
        },
        {"instruction": "列出三种水果。", "input": "", "output": "苹果、香蕉、橙子。"},
        {"instruction": "多行\n指令", "input": "", "output": "第一行\n第二行"},
    ]
    # A truncated answer loses its last (probably incomplete) block.
    assert parse_tasks(text, "length") == tasks[:2]


def test_parse_skips_blocks_without_instruction_or_output_and_preambles():
    text = (
        "好的，下面是任务：\n###\n5. 指令: 只有指令\n"
        "###\n6. 输入:\n孤立的输入\n6. 输出:\n没有指令\n"
        "###\n7. 指令: 完整\n7. 输出:\n有输出但没有输入\n"
    )
    assert parse_tasks(text, "stop") == [
        {"instruction": "完整", "input": "", "output": "有输出但没有输入"}
    ]
    # A preamble before a labelled instruction is not taken for the instruction.
    assert (
        parse_tasks("当然！\n4. 指令: 甲\n4. 输出:\n乙", None)[0]["instruction"] == "甲"
    )


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "###",
        "######",
        "\x00\ufffd",
        "指令:",
        "4. 输出:",
        42,
        "### 指令：\n输出：" * 1000,
        "[]{}",
    ],
)
def test_parse_never_raises(text):
    tasks = parse_tasks(text, "length")
    assert isinstance(tasks, list)
    assert all(set(task) == {"instruction", "input", "output"} for task in tasks)
