"""Offline metrics: char F1, final-number match, reference metrics, reference NLL."""

from __future__ import annotations

import math

import pytest

from belle_kedro.metrics import (
    char_f1,
    final_number,
    numbers_match,
    pooled_perplexity,
    reference_metrics,
    reference_nll,
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


class _CharTokenizer:
    """A real (tiny) tokenizer: one id per character, so token counts are checkable."""

    pad_token_id = 0
    eos_token_id = 1

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def __call__(
        self, text: str, add_special_tokens: bool = False
    ) -> dict[str, list[int]]:
        return {
            "input_ids": [
                self.vocab.setdefault(ch, 2 + len(self.vocab) % 60) for ch in text
            ]
        }


def test_reference_nll_scores_only_reference_tokens_and_pools_perplexity() -> None:
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(0)
    model = BloomForCausalLM(
        BloomConfig(vocab_size=64, hidden_size=32, n_layer=1, n_head=2)
    )
    tokenizer = _CharTokenizer()
    prompts = ["问：一加一？答：", "问：天空什么颜色？答："]
    references = ["二", ""]
    batched = reference_nll(model, tokenizer, prompts, references, batch_size=2)
    assert batched[0][1] == 1 and batched[0][0] > 0
    assert batched[1] == (pytest.approx(math.nan, nan_ok=True), 0)

    # The reference's NLL does not depend on what else is in the batch (padding is masked).
    longer = reference_nll(
        model, tokenizer, [prompts[0], prompts[1] * 3], ["二", "蓝色"], batch_size=2
    )
    assert longer[0][0] == pytest.approx(batched[0][0], rel=1e-4)
    assert longer[1][1] == 2

    # the same number as the model's own loss with the prompt masked out of the labels
    prompt_ids = tokenizer(prompts[1] * 3)["input_ids"]
    reference_ids = tokenizer("蓝色")["input_ids"]
    with torch.no_grad():
        own = model(
            input_ids=torch.tensor([prompt_ids + reference_ids]),
            labels=torch.tensor([[-100] * len(prompt_ids) + reference_ids]),
        ).loss
    assert longer[1][0] / 2 == pytest.approx(float(own), rel=1e-4)

    perplexity = pooled_perplexity([batched[0][0], longer[1][0]], [1, 2])
    assert perplexity == pytest.approx(math.exp((batched[0][0] + longer[1][0]) / 3))
    assert math.isnan(pooled_perplexity([math.nan], [0]))
