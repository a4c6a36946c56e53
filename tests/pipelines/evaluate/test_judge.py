"""Judge prompt assembly (the ``ours`` template file), cache keys and sample statistics."""

from __future__ import annotations

import math

import pytest

from belle_kedro.pipelines.evaluate.judge import (
    average_samples,
    judge_request_id,
    load_template,
    sample_ids,
)
from tests.support.llm import judge_templates

OURS = load_template(judge_templates(), "ours")


def test_judge_prompt_has_class_prompt_question_std_answer_then_answer() -> None:
    prompt = OURS.format_input(
        "请给回答打分。",
        cls="math",
        question="1+1等于几？",
        std_answer="2",
        answer="等于2。",
    )
    assert (
        prompt.index("请给回答打分")
        < prompt.index("1+1等于几")
        < prompt.index("标准回答：2")
        < prompt.index("等于2。")
    )


def test_judge_prompt_drops_an_empty_std_answer() -> None:
    prompt = OURS.format_input(
        "请打分。",
        cls="generation",
        question="写一首诗",
        std_answer="  ",
        answer="春风又绿江南岸",
    )
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
    assert average.std == pytest.approx(0.1)
    assert average.spread == pytest.approx(0.2)
    once = average_samples([0.9])
    assert once.score == 0.9 and math.isnan(once.std) and math.isnan(once.spread)
    nothing = average_samples([None, None, None])
    assert math.isnan(nothing.score) and not nothing.parsed


def test_unknown_template_is_a_clear_error() -> None:
    with pytest.raises(
        ValueError, match=r"evaluate.judge.template 'mt-bench'.*belle, ours"
    ):
        load_template(judge_templates(), "mt-bench")


def test_a_template_field_in_an_answer_is_sent_as_written() -> None:
    prompt = OURS.format_input(
        "打分。", cls="code", question="{answer}?", std_answer="{x}", answer="{}"
    )
    assert prompt == "打分。\n\n问题：{answer}?\n标准回答：{x}\n模型回答：{}"
