"""Offline metrics: char F1, final-number match, reference metrics, pooled perplexity."""

from __future__ import annotations

import math

import pytest

from belle_kedro.pipelines.evaluate.scores import (
    char_f1,
    final_number,
    numbers_match,
    pooled_perplexity,
    reference_metrics,
)


def test_char_f1_counts_shared_characters() -> None:
    assert char_f1("北京", "北京") == 1.0
    # prediction 北京市 (3 chars), reference 北京 (2 chars): P = 2/3, R = 1
    assert char_f1("北京市", "北京") == pytest.approx(0.8)
    assert char_f1("上海", "北京") == 0.0
    assert (
        char_f1("北 京", "北京") == 1.0
    )  # whitespace is not a character of the answer


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("答案是 42。", 42.0),
        ("先算 3+4=7，再乘以 2，得 14", 14.0),
        ("结果为 -3.5", -3.5),
        ("总价 1,250 元", 1250.0),
        ("概率是 3/4", 0.75),
        ("答案：１２", 12.0),  # full-width digits
        ("从 3-5 个里选", 5.0),  # a range's dash is not a minus sign
        ("没有数字", None),
        ("", None),
    ],
)
def test_final_number(text: str, number: float | None) -> None:
    assert final_number(text) == number


def test_numbers_match_only_judges_what_parses() -> None:
    assert numbers_match("所以一共是 12 个苹果", "12") == 1.0
    assert numbers_match("一共 13 个", "12") == 0.0
    assert numbers_match("我不知道", "12") == 0.0  # reference has a number, answer none
    assert math.isnan(numbers_match("12", "无法计算"))
    assert numbers_match("0.5", "1/2") == 1.0


def test_reference_metrics_are_nan_without_a_reference() -> None:
    with_ref = reference_metrics("北京是中国的首都", "北京", number_match=False)
    assert with_ref["rouge_l"] == pytest.approx(2 * 2 / (8 + 2))
    assert math.isnan(with_ref["number_match"])
    assert with_ref["answer_chars"] == 8.0
    without = reference_metrics("一首诗", "", number_match=True)
    assert (
        math.isnan(without["rouge_l"])
        and math.isnan(without["char_f1"])
        and math.isnan(without["number_match"])
    )


def test_pooled_perplexity_pools_tokens_and_skips_unscored_rows() -> None:
    assert pooled_perplexity([2.0, 4.0], [1, 2]) == pytest.approx(math.exp(6.0 / 3))
    assert pooled_perplexity([2.0, math.nan], [2, 0]) == pytest.approx(math.exp(1.0))
    assert math.isnan(pooled_perplexity([math.nan], [0]))
