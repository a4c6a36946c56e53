"""What chat models really write around BELLE's layout, each parsed to the expected tasks.

Every shape below was written for this test; ``A``/``B`` are the two tasks most
shapes hold, so each case states only how the text is laid out.
"""

from __future__ import annotations

import pytest

from belle_kedro.pipelines.generate.self_instruct import parse_answer

A = {
    "instruction": "把下面的句子翻译成英文。",
    "input": "今天天气很好。",
    "output": "The weather is nice today.",
}
B = {"instruction": "列出三种常见的水果。", "input": "", "output": "苹果、香蕉、橙子。"}
C = {"instruction": "写一句关于春天的诗。", "input": "", "output": "春风又绿江南岸。"}

SHAPES: list[tuple[str, str, list[dict[str, str]]]] = [
    (
        "belle_exact",
        "1. 指令: 把下面的句子翻译成英文。\n1. 输入:\n今天天气很好。\n1. 输出:\nThe weather is nice today.\n###\n2. 指令: 列出三种常见的水果。\n2. 输入:\n<无输入>\n2. 输出:\n苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "continuation",
        " 把下面的句子翻译成英文。\n4. 输入:\n今天天气很好。\n4. 输出:\nThe weather is nice today.\n###\n5. 指令: 列出三种常见的水果。\n5. 输入:\n<无输入>\n5. 输出:\n苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "full_width_colons",
        "1. 指令：把下面的句子翻译成英文。\n1. 输入：\n今天天气很好。\n1. 输出：\nThe weather is nice today.\n###\n2. 指令：列出三种常见的水果。\n2. 输入：<无输入>\n2. 输出：苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "bold_labels_colon_outside",
        "**指令**：把下面的句子翻译成英文。\n**输入**：今天天气很好。\n**输出**：The weather is nice today.\n###\n**指令**：列出三种常见的水果。\n**输入**：<无输入>\n**输出**：苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "bold_labels_colon_inside",
        "**指令：** 把下面的句子翻译成英文。\n**输入：** 今天天气很好。\n**输出：** The weather is nice today.\n###\n**指令：** 列出三种常见的水果。\n**输入：** 无输入\n**输出：** 苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "bold_numbered",
        "**1. 指令：** 把下面的句子翻译成英文。\n**1. 输入：** 今天天气很好。\n**1. 输出：** The weather is nice today.\n###\n**2. 指令：** 列出三种常见的水果。\n**2. 输入：** <无输入>\n**2. 输出：** 苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "number_then_bold",
        "1. **指令**: 把下面的句子翻译成英文。\n1. **输入**: 今天天气很好。\n1. **输出**: The weather is nice today.\n###\n2. **指令**: 列出三种常见的水果。\n2. **输入**: <无输入>\n2. **输出**: 苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "cjk_brackets",
        "【指令】把下面的句子翻译成英文。\n【输入】今天天气很好。\n【输出】The weather is nice today.\n###\n【指令】列出三种常见的水果。\n【输入】＜无输入＞\n【输出】苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "cjk_brackets_with_colon",
        "【指令】：把下面的句子翻译成英文。\n【输入】：今天天气很好。\n【输出】：The weather is nice today.",
        [A],
    ),
    (
        "square_brackets",
        "[指令] 把下面的句子翻译成英文。\n[输入] 今天天气很好。\n[输出] The weather is nice today.\n###\n[指令] 列出三种常见的水果。\n[输入] 无输入\n[输出] 苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "dash_list_items",
        "- 指令: 把下面的句子翻译成英文。\n- 输入: 今天天气很好。\n- 输出: The weather is nice today.\n###\n- 指令: 列出三种常见的水果。\n- 输入: <无输入>\n- 输出: 苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "restarted_numbering",
        "1. 指令: 把下面的句子翻译成英文。\n1. 输入: 今天天气很好。\n1. 输出: The weather is nice today.\n###\n1. 指令: 列出三种常见的水果。\n1. 输入: <无输入>\n1. 输出: 苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "no_numbering",
        "指令: 把下面的句子翻译成英文。\n输入: 今天天气很好。\n输出: The weather is nice today.\n###\n指令: 列出三种常见的水果。\n输入: <无输入>\n输出: 苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "mixed_numbering",
        "7. 指令: 把下面的句子翻译成英文。\n输入: 今天天气很好。\n7. 输出: The weather is nice today.\n###\n指令: 列出三种常见的水果。\n3. 输入: <无输入>\n输出: 苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "chinese_enumeration_comma",
        "1、指令：把下面的句子翻译成英文。\n1、输入：今天天气很好。\n1、输出：The weather is nice today.",
        [A],
    ),
    (
        "full_width_period",
        "1．指令：把下面的句子翻译成英文。\n1．输入：今天天气很好。\n1．输出：The weather is nice today.",
        [A],
    ),
    (
        "parenthesis_number",
        "1) 指令: 把下面的句子翻译成英文。\n1) 输入: 今天天气很好。\n1) 输出: The weather is nice today.",
        [A],
    ),
    (
        "no_separator_between_tasks",
        "1. 指令: 把下面的句子翻译成英文。\n1. 输入: 今天天气很好。\n1. 输出: The weather is nice today.\n\n2. 指令: 列出三种常见的水果。\n2. 输入: <无输入>\n2. 输出: 苹果、香蕉、橙子。\n\n3. 指令: 写一句关于春天的诗。\n3. 输入: <无输入>\n3. 输出: 春风又绿江南岸。",
        [A, B, C],
    ),
    (
        "some_separators_missing",
        "1. 指令: 把下面的句子翻译成英文。\n1. 输入: 今天天气很好。\n1. 输出: The weather is nice today.\n###\n2. 指令: 列出三种常见的水果。\n2. 输入: <无输入>\n2. 输出: 苹果、香蕉、橙子。\n3. 指令: 写一句关于春天的诗。\n3. 输入: <无输入>\n3. 输出: 春风又绿江南岸。",
        [A, B, C],
    ),
    (
        "continuation_without_separator",
        " 把下面的句子翻译成英文。\n4. 输入: 今天天气很好。\n4. 输出: The weather is nice today.\n5. 指令: 列出三种常见的水果。\n5. 输入: <无输入>\n5. 输出: 苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "whole_answer_in_code_fence",
        "```\n1. 指令: 把下面的句子翻译成英文。\n1. 输入: 今天天气很好。\n1. 输出: The weather is nice today.\n###\n2. 指令: 列出三种常见的水果。\n2. 输入: <无输入>\n2. 输出: 苹果、香蕉、橙子。\n```",
        [A, B],
    ),
    (
        "code_fence_with_language",
        "```text\n指令：把下面的句子翻译成英文。\n输入：今天天气很好。\n输出：The weather is nice today.\n```\n",
        [A],
    ),
    (
        "code_inside_an_output_is_kept",
        '指令: 用Python打印你好。\n输入: <无输入>\n输出:\n```python\nprint("你好")\n```',
        [
            {
                "instruction": "用Python打印你好。",
                "input": "",
                "output": '```python\nprint("你好")\n```',
            }
        ],
    ),
    (
        "preamble_then_separator",
        "好的，以下是为您生成的任务：\n###\n1. 指令: 把下面的句子翻译成英文。\n1. 输入: 今天天气很好。\n1. 输出: The weather is nice today.",
        [A],
    ),
    (
        "preamble_without_separator",
        "好的，以下是为您生成的任务：\n\n1. 指令: 把下面的句子翻译成英文。\n1. 输入: 今天天气很好。\n1. 输出: The weather is nice today.\n###\n2. 指令: 列出三种常见的水果。\n2. 输入: <无输入>\n2. 输出: 苹果、香蕉、橙子。",
        [A, B],
    ),
    (
        "closing_remark_paragraph",
        "1. 指令: 把下面的句子翻译成英文。\n1. 输入: 今天天气很好。\n1. 输出: The weather is nice today.\n###\n2. 指令: 列出三种常见的水果。\n2. 输入: <无输入>\n2. 输出: 苹果、香蕉、橙子。\n\n以上就是生成的任务，希望对您有帮助！",
        [A, B],
    ),
    (
        "closing_remark_after_rule",
        "指令: 列出三种常见的水果。\n输入: <无输入>\n输出: 苹果、香蕉、橙子。\n\n---\n如需更多任务，请告诉我。",
        [B],
    ),
    (
        "closing_remark_after_separator",
        "指令: 列出三种常见的水果。\n输入: <无输入>\n输出: 苹果、香蕉、橙子。\n###\n希望这些任务对您有用。",
        [B],
    ),
    (
        "preamble_and_closing_remark",
        "当然可以！\n\n**指令**：列出三种常见的水果。\n**输入**：<无输入>\n**输出**：苹果、香蕉、橙子。\n\n如果您需要更多示例，请随时告诉我。",
        [B],
    ),
    (
        "missing_input_label",
        "1. 指令: 列出三种常见的水果。\n1. 输出: 苹果、香蕉、橙子。\n###\n2. 指令: 写一句关于春天的诗。\n2. 输出: 春风又绿江南岸。",
        [B, C],
    ),
    (
        "multiline_output",
        "指令: 写两句关于春天的诗。\n输入: <无输入>\n输出:\n春风又绿江南岸，\n明月何时照我还。",
        [
            {
                "instruction": "写两句关于春天的诗。",
                "input": "",
                "output": "春风又绿江南岸，\n明月何时照我还。",
            }
        ],
    ),
    (
        "output_paragraphs_that_are_not_a_remark",
        "指令: 简单介绍猫。\n输入: <无输入>\n输出:\n猫是常见的宠物。\n\n它们喜欢睡觉。",
        [
            {
                "instruction": "简单介绍猫。",
                "input": "",
                "output": "猫是常见的宠物。\n\n它们喜欢睡觉。",
            }
        ],
    ),
    (
        "label_word_in_text_is_not_a_label",
        "指令: 说明输出设备有哪些。\n输入: <无输入>\n输出: 显示器、打印机。\n输出设备把结果交给人。",
        [
            {
                "instruction": "说明输出设备有哪些。",
                "input": "",
                "output": "显示器、打印机。\n输出设备把结果交给人。",
            }
        ],
    ),
    (
        "crlf_line_ends",
        "指令: 列出三种常见的水果。\r\n输入: <无输入>\r\n输出: 苹果、香蕉、橙子。\r\n",
        [B],
    ),
    (
        "block_without_output_is_skipped",
        "1. 指令: 只有指令没有输出。\n###\n2. 指令: 列出三种常见的水果。\n2. 输入: <无输入>\n2. 输出: 苹果、香蕉、橙子。",
        [B],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in SHAPES],
    ids=[case[0] for case in SHAPES],
)
def test_each_shape_parses_to_the_expected_tasks(text: str, expected: list[dict]):
    assert parse_answer(text, "stop").tasks == expected


def test_at_least_thirty_distinct_shapes_parse_as_expected():
    # Counts what the parser gets right, not the table's size: breaking it fails here.
    right = {
        text
        for _, text, expected in SHAPES
        if parse_answer(text, "stop").tasks == expected
    }
    assert len(right) >= 30


def test_labelled_blocks_that_give_no_task_are_reported_and_prose_is_not():
    answer = parse_answer(SHAPES[-1][1], "stop")
    assert answer.unparsable == ["1. 指令: 只有指令没有输出。"]
    assert parse_answer(SHAPES[25][1], "stop").unparsable == []
