"""Judge score parsing, prompt assembly, cache keys and sample averaging."""

from __future__ import annotations

import math

import pytest

from belle_kedro.pipelines.evaluate.judge import (
    average_samples,
    build_judge_prompt,
    judge_request_id,
    parse_score,
    sample_ids,
)

# (reply, expected score); None = unparsed. Replies a real judge produces, and traps.
ADVERSARIAL_REPLIES = [
    ("得分: 0.8", 0.8),
    ("得分：0.8", 0.8),  # full-width colon
    ("得分：０．８", 0.8),  # full-width digits and dot
    ("**得分**: 0.9", 0.9),  # markdown bold label
    ("**得分: 0.9**", 0.9),
    ("得分：**0.6**", 0.6),  # bold number
    ("得分: `0.4`", 0.4),  # code span
    ("得分: 0.8/1", 0.8),  # fraction of 1
    ("得分: 8/10", 0.8),  # fraction of 10
    ("得分：7 / 10 分", 0.7),
    ("得分: 85%", 0.85),  # percentage
    ("得分: 1", 1.0),
    ("得分: 0", 0.0),  # a real zero stays zero
    ("得分: 1.5", 1.0),  # clamped
    ("得分: -0.2", 0.0),  # clamped
    ("得分: 0.8。", 0.8),  # trailing full stop is not a decimal point
    ("得分：0。7", 0.7),  # Chinese full stop between digits is one
    ("得分:\n0.3", 0.3),  # number on the next line
    ("得分 0.5", 0.5),  # no colon
    ("最终得分为：0.65分", 0.65),
    ("评分: 0.55", 0.55),
    ("Score: 0.45", 0.45),
    ("得分：[0.35]", 0.35),
    ("得分\u00a0:\u00a00.25", 0.25),  # NO-BREAK SPACEs
    ("回答基本正确，但遗漏了一个步骤。\n得分: 0.7", 0.7),  # reasoning first
    ("得分: 0.5\n不过考虑到格式问题，修正后得分: 0.3", 0.3),  # the last score wins
    ("满分为1分。得分: 0.9", 0.9),  # "满分" is not the score
    ("得分: .5", 0.5),
    # unparsed: no readable score, never 0
    ("", None),
    (None, None),
    ("这个回答很好。", None),
    ("得分: N/A", None),
    ("得分: x", None),
    ("请按照“得分: x”的格式输出", None),
    ("得分：零点八", None),  # Chinese numerals are not guessed at
    ("得分: 3/0", None),  # zero denominator
]


@pytest.mark.parametrize(("reply", "expected"), ADVERSARIAL_REPLIES)
def test_parse_score(reply: str | None, expected: float | None) -> None:
    got = parse_score(reply)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_parse_score_covers_at_least_20_adversarial_replies() -> None:
    assert len(ADVERSARIAL_REPLIES) >= 20
    assert sum(expected is None for _, expected in ADVERSARIAL_REPLIES) >= 5


def test_judge_prompt_has_class_prompt_question_std_answer_then_answer() -> None:
    prompt = build_judge_prompt("请给回答打分。", "1+1等于几？", "2", "等于2。")
    assert (
        prompt.index("请给回答打分")
        < prompt.index("1+1等于几")
        < prompt.index("标准回答：2")
        < prompt.index("等于2。")
    )


def test_judge_prompt_drops_an_empty_std_answer() -> None:
    prompt = build_judge_prompt("请打分。", "写一首诗", "  ", "春风又绿江南岸")
    assert "标准回答" not in prompt
    assert prompt.endswith("模型回答：春风又绿江南岸")


def test_request_ids_depend_on_model_prompt_sample_and_params() -> None:
    base = judge_request_id("gpt", "p", 0, {"temperature": 0.7})
    assert base == judge_request_id("gpt", "p", 0, {"temperature": 0.7})
    others = {
        judge_request_id("other", "p", 0, {"temperature": 0.7}),
        judge_request_id("gpt", "q", 0, {"temperature": 0.7}),
        judge_request_id("gpt", "p", 1, {"temperature": 0.7}),
        judge_request_id("gpt", "p", 0, {"temperature": 0.2}),
    }
    assert base not in others and len(others) == 4
    assert sample_ids("gpt", "p", 3, {"temperature": 0.7})[0] == base


def test_average_leaves_unparsed_samples_out() -> None:
    average = average_samples([0.6, None, 0.8])
    assert average.score == pytest.approx(0.7)
    assert (average.n_samples, average.n_parsed, average.parsed) == (3, 2, True)
    nothing = average_samples([None, None, None])
    assert math.isnan(nothing.score) and not nothing.parsed
