"""The judge's score read as given: first 得分 value, its scale, no clamping, reasons."""

from __future__ import annotations

import math

import pytest

from belle_kedro.pipelines.evaluate.judge import chinese_number, read_score

# (judge reply, score in [0, 1]); None = not read. Replies written here in the styles
# ChatGPT-like judges answer BELLE's prompts with, and the traps they set.
JUDGE_REPLIES: list[tuple[str | None, float | None]] = [
    ("得分: 0.8", 0.8),
    ("得分：0.8", 0.8),
    ("得分：０．８", 0.8),  # full-width digits and dot
    ("得分:1", 1.0),
    ("得分：0", 0.0),  # a real zero stays zero
    ("得分：.5", 0.5),
    ("**得分**：0.9", 0.9),
    ("**得分：0.9**\n理由：回答完整。", 0.9),
    ("得分：`0.4`", 0.4),
    ("得分: 0.8/1", 0.8),
    ("得分：8/10", 0.8),
    ("得分：7 / 10 分", 0.7),
    ("得分：8分（满分10分）", 0.8),
    ("得分：8 分 (满分 10 分)", 0.8),
    ("得分为8分，满分10分。", 0.8),
    ("得分：4分（总分5分）", 0.8),
    ("得分：85%", 0.85),
    ("得分： 60 %", 0.6),
    ("最终得分为：0.65分", 0.65),
    ("模型回答得分是0.3", 0.3),
    ("得分\u00a0:\u00a00.25", 0.25),  # NO-BREAK SPACEs
    ("得分:\n0.3", 0.3),  # value on the next line
    ("得分：[0.35]", 0.35),
    ("得分：0。7", 0.7),  # Chinese full stop between digits
    ("得分：0.8。理由：答案正确，但步骤略显跳跃。", 0.8),
    ("回答基本正确，但遗漏了一个步骤。\n得分: 0.7", 0.7),  # reasoning first
    ("得分:0.7\n（注：若严格评分 0.5 更合适）", 0.7),  # the first score counts
    ("得分: 0.5\n修正后得分: 0.3", 0.5),  # a later "correction" is commentary
    ("满分为1分。得分: 0.9", 0.9),  # 满分 alone is not the score
    ("请按照“得分:”这样的形式输出分数。\n得分: 0.6", 0.6),  # echoed label skipped
    ("得分：零点八", 0.8),  # Chinese numerals
    ("得分：一", 1.0),
    ("得分：零", 0.0),
    ("得分：八分（满分十分）", 0.8),
    ("得分：七十分（满分一百分）", 0.7),
    ("得分：九十五%", 0.95),
    ("得分：十分（满分十分）", 1.0),
    ("The answer is correct.\n得分: 1\nReason: matches the reference.", 1.0),
    # not read: rejected with a reason, never clamped, never 0
    ("得分：8", None),  # 8 on a 0..1 scale is out of range, not 1.0
    ("得分：8分（满分10分）", 0.8),
    ("得分: 1.5", None),
    ("得分: -0.2", None),
    ("得分：12/10", None),
    ("得分：120%", None),
    ("得分：0.6-0.7", None),  # a range, not one score
    ("得分：0.6~0.7分", None),
    ("得分：七八分（满分十分）", None),  # 7 or 8: ambiguous
    ("得分: 3/0", None),
    ("得分: N/A", None),
    ("得分：无法评分", None),
    ("这个回答很好，基本满足要求。", None),
    ("评分: 0.55", None),  # not labelled 得分
    ("", None),
    ("   ", None),
    (None, None),
]


@pytest.mark.parametrize(("reply", "expected"), JUDGE_REPLIES)
def test_read_score(reply: str | None, expected: float | None) -> None:
    reading = read_score(reply)
    if expected is None:
        assert math.isnan(reading.score) and not reading.parsed
        assert reading.reason, "a rejected reply must say why"
    else:
        assert reading.parsed and reading.reason == ""
        assert reading.score == pytest.approx(expected)


def test_the_reader_rejects_at_least_twelve_and_reads_at_least_twenty_eight() -> None:
    readings = [read_score(reply) for reply, _ in JUDGE_REPLIES]
    assert sum(not reading.parsed for reading in readings) >= 12
    assert sum(reading.parsed for reading in readings) >= 28


@pytest.mark.parametrize(
    ("reply", "reason_part"),
    [
        ("得分：8", "out of range: 8"),
        ("得分：12/10", "out of range: 12 of 10"),
        ("得分：0.6-0.7", "a range"),
        ("得分：七八分", "ambiguous Chinese numeral '七八'"),
        ("得分: 3/0", "not positive"),
        ("好的回答", "no value labelled 得分"),
        (None, "no reply"),
    ],
)
def test_rejections_say_why(reply: str | None, reason_part: str) -> None:
    assert reason_part in read_score(reply).reason


@pytest.mark.parametrize(
    ("numeral", "value"),
    [("零", 0), ("五", 5), ("十", 10), ("十二", 12), ("三十", 30), ("九十九", 99),
     ("零点八", 0.8), ("一点零五", 1.05), ("八九", None), ("点", None), ("十十", None)],
)  # fmt: skip
def test_chinese_numerals_only_when_unambiguous(
    numeral: str, value: float | None
) -> None:
    got = chinese_number(numeral)
    assert got == (None if value is None else pytest.approx(value))
