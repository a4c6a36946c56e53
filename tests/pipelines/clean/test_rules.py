"""Each clean rule with records it must drop and records it must keep (written here)."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from belle_kedro.common.config import ParameterError, build
from belle_kedro.pipelines.clean import rules as filters
from belle_kedro.pipelines.clean.report import clean_report
from belle_kedro.pipelines.clean.settings import RulesSettings
from tests.support.project import REPO_ROOT

PARAMS = yaml.safe_load((REPO_ROOT / "conf/base/parameters_clean.yml").read_text())[
    "clean"
]


def options(rule: str) -> dict:
    settings = dict(PARAMS["rules"][rule])
    settings.pop("enabled")
    return settings


def frame(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["instruction", "input", "output"])


def dropped(rule: str, records: pd.DataFrame) -> list[bool]:
    _, mask = filters.RULES[rule].apply(records, **options(rule))
    return mask.tolist()


def test_normalise_text_folds_width_and_space_but_keeps_meaning_and_layout():
    assert filters.normalise_text("ＧＰＴ４ 模型\u3000很强") == "GPT4 模型 很强"
    assert (
        filters.normalise_text("⽇本的⾸都") == "日本的首都"
    )  # Kangxi radicals -> ideographs
    # Chinese punctuation, superscripts and circled numbers survive (NFKC would change them).
    assert filters.normalise_text("x²+y²=1，①第一步：") == "x²+y²=1，①第一步："
    assert (
        filters.normalise_text("  a \t b\u200b  \r\n\r\n\r\n\r\n    return x  \n")
        == "a b\n\n    return x"
    )


def test_normalise_records_fills_missing_input_and_keeps_provenance():
    records = pd.DataFrame(
        {
            "instruction": [" 写诗 "],
            "output": ["春天"],
            "category": ["poem"],
            "source": ["s"],
        }
    )
    normalised = filters.normalise_records(records)
    # The one record's row (pandas-stubs types .loc[0, columns] as a DataFrame).
    row = normalised.iloc[0]
    columns = ["instruction", "input", "output", "category", "source"]
    assert row[columns].tolist() == ["写诗", "", "春天", "poem", "s"]


def test_blacklist_is_case_sensitive_like_belle_unless_asked():
    records = frame(
        ("描述这张图片里的人物", "", "好的"),
        ("总结文章", "见链接", "好的"),
        ("什么是大模型？", "", "例如 chatgpt 就是一种。"),
        ("什么是大模型？", "", "例如 ChatGPT 就是一种。"),
        ("访问网站", "", "请看 HTTP://example.org"),
        ("写一首关于秋天的诗", "", "秋风起，落叶黄。"),
    )
    assert dropped("blacklist", records) == [True, True, True, False, False, False]
    folded = filters.blacklisted(
        records, **{**options("blacklist"), "case_sensitive": False}
    )
    assert folded.tolist() == [True, True, True, True, True, False]


def test_model_address_rewrites_belle_phrases_then_drops_leftover_mentions():
    records = frame(
        ("让GPT模型写一首关于海的诗", "", "海浪拍岸。"),
        ("请GPT帮我总结这段话", "今天天气很好。", "天气好。"),
        ("以便GPT模型能够理解，解释光合作用", "", "植物……"),
        ("作为GPT模型，列出三种水果", "", "苹果、香蕉、梨"),
        ("比较GPT和BERT的结构差异", "", "二者不同。"),
        ("写一首诗", "题目：我和GPT的对话", "好。"),
        ("写一首诗", "题目：我和gpt的对话", "好。"),
        ("列出三种蔬菜", "", "白菜、萝卜、土豆"),
    )
    rewritten, mask = filters.address_model(records, **options("model_address"))
    # 作为GPT模型 is not on BELLE's list, so that record still names GPT and goes.
    assert mask.tolist() == [False, False, False, True, True, True, False, False]
    assert rewritten["instruction"].tolist()[:3] == [
        "写一首关于海的诗",
        "帮我总结这段话",
        "理解，解释光合作用",
    ]
    ours = {
        **options("model_address"),
        "strip_patterns": [r"(?:作为|你是)\s*(?:一个)?\s*gpt\s*(?:模型)?\s*[，,]?"],
    }
    rewritten, mask = filters.address_model(records, **ours)
    assert rewritten.loc[3, "instruction"] == "列出三种水果" and not mask[3]


def test_no_input_marker_empties_inputs_like_belle():
    records = frame(
        ("写一首诗", "<无输入>", "好。"),
        ("写一首诗", "（无输入）", "好。"),
        ("翻译", "你好", "hello"),
    )
    rewritten, mask = filters.empty_no_input_markers(
        records, **options("no_input_marker")
    )
    assert rewritten["input"].tolist() == ["", "", "你好"] and not mask.any()


def test_length():
    long_with_input = "请根据下面给出的材料" * 11  # 110 chars
    long_with_example = (
        "请参考示例" + "按要求改写句子" * 16
    )  # 117 chars, gives an example
    records = frame(
        ("写诗", "", "春眠不觉晓"),  # 2 chars: too short
        ("写一首", "", "春眠不觉晓"),  # 3 chars: not longer than 3
        ("写一首诗", "", "春眠不觉晓"),  # 4 chars: kept
        (long_with_input, "一些材料", "好的"),  # >= 100 with input
        (long_with_input, "", "好的"),  # long but no input: kept
        (long_with_example, "原句", "改写后"),  # < 150 with an example: kept
        ("写一首关于雨的诗", "", "   "),  # empty output
    )
    assert dropped("length", records) == [True, True, False, True, False, False, True]
    capped = filters.bad_length(
        records.iloc[[2]], **{**options("length"), "max_output_chars": 3}
    )
    assert capped.tolist() == [True]


def test_language_drops_english_answers_to_chinese_instructions_except_translation():
    records = frame(
        (
            "介绍一下长城的历史",
            "",
            "The Great Wall was built over many centuries to protect the empire.",
        ),
        (
            "总结这段话的要点",
            "Cats sleep for most of the day and play at night.",
            "猫白天睡觉晚上玩。",
        ),
        ("把这句话翻译成英文", "我喜欢猫", "I like cats very much."),
        ("用 Python 写一个函数求和", "", "def add(a, b):\n    return a + b"),
        ("推荐一款手机", "", "推荐苹果iPhone 15 Pro，拍照很好，续航也不错。"),
        ("给出一个字符串的例子", "", "例如“abbcddeefff”"),
        (
            "Explain gravity",
            "",
            "Gravity pulls masses together.",
        ),  # not a Chinese instruction
    )
    assert dropped("language", records) == [
        True,
        True,
        False,
        False,
        False,
        False,
        False,
    ]


def test_missing_input():
    records = frame(
        ("将以下句子翻译成英文。", "", "好的"),
        ("总结这篇文章的主要观点", "", "好的"),
        ("阅读给定的句子并找出主语", "", "好的"),
        ("将以下句子翻译成英文。", "我喜欢猫", "I like cats."),  # input given
        ("将以下句子翻译成英文：我喜欢猫", "", "I like cats."),  # inline after a colon
        (
            "判断下面的句子是否通顺？他明天去过北京。",
            "",
            "不通顺",
        ),  # inline next sentence
        ("把以下词语换成反义词（冷、高）", "", "热、低"),  # inline in brackets
        ("创建一个可以下棋的程序", "", "好的"),  # "可以下" is not "以下"
        ("写一篇关于环保的文章", "", "好的"),  # nothing referred to
    )
    assert dropped("missing_input", records) == [True] * 3 + [False] * 6


def test_exact_duplicates_compare_normalised_instruction_and_input():
    records = frame(
        ("写一首诗", "", "a"),
        ("写 一首诗", "", "b"),  # same key once spaces are gone
        ("写一首诗", "主题：春", "c"),  # different input: kept
        ("Write A Poem", "", "d"),
        ("write a poem", "", "e"),  # case folded
    )
    assert dropped("exact_duplicates", records) == [False, True, False, False, True]


def _rules(**changes: dict) -> RulesSettings:
    """The declared rules with ``changes`` merged into the named rules."""
    values = {
        name: {**rule, **changes.get(name, {})}
        for name, rule in PARAMS["rules"].items()
    }
    return build(RulesSettings, values, "clean.rules")


def test_apply_rules_reports_counts_examples_and_honours_enabled():
    records = frame(
        *[(f"描述第{i}张图片", "", "好") for i in range(5)],
        ("写一首关于秋天的诗", "", "秋风起"),
    )
    rules = _rules(
        blacklist={"terms": ["图片"]}, length={"enabled": False}, language={}
    )
    kept, _, report = filters.apply_rules(records, rules, examples=3)
    assert kept["instruction"].tolist() == ["写一首关于秋天的诗"]
    assert [row["rule"] for row in report] == list(PARAMS["rules"])
    blacklist = report[1]
    assert blacklist["dropped"] == 5 and len(blacklist["examples"]) == 3
    assert blacklist["examples"][0]["instruction"] == "描述第0张图片"
    assert report[3] == {
        "rule": "length",
        "enabled": False,
        "input": 1,
        "dropped": 0,
        "examples": [],
    }


def test_a_misspelled_rule_or_option_is_refused_by_its_dotted_key():
    values = {**PARAMS["rules"], "no_such_rule": {"enabled": True}}
    with pytest.raises(ParameterError, match=r"clean\.rules\.no_such_rule"):
        build(RulesSettings, values, "clean.rules")
    values = {**PARAMS["rules"], "length": {**PARAMS["rules"]["length"], "max": 3}}
    with pytest.raises(ParameterError, match=r"clean\.rules\.length\.max\b"):
        build(RulesSettings, values, "clean.rules")


def test_empty_input_gives_an_empty_output_and_a_report_that_says_so():
    from belle_kedro.pipelines.clean import nodes

    records = nodes.normalise_instructions(frame())
    kept, _, filter_report = nodes.filter_instructions(records, PARAMS["rules"], 3)
    seeds = pd.DataFrame(
        {"instruction": ["写一首诗"], "instances": [[{"input": "", "output": "好"}]]}
    )
    kept, _, dedup_report = nodes.remove_near_duplicates(
        kept, seeds, PARAMS["near_duplicates"], PARAMS["matching"], 3, engine="local"
    )
    eval_set = pd.DataFrame(
        {"question": ["写一首诗"], "std_answer": [""], "class": ["generation"]}
    )
    kept, _, decontamination_report = nodes.decontaminate(
        kept, eval_set, PARAMS["decontamination"], PARAMS["matching"], 3, engine="local"
    )
    counts = {"classifier": {"held_out_accuracy": 1.0}, "kept_per_class": {}}
    report, metrics, tags = clean_report(
        filter_report, dedup_report, decontamination_report, counts, kept
    )
    assert kept.empty and list(kept.columns[:3]) == ["instruction", "input", "output"]
    assert report["output_records"] == 0 and "no records" in report["note"]
    assert tags["eval_set_digest"] == report["eval_set_digest"]


def test_rules_run_chunk_by_chunk_and_repeats_count_only_surviving_first_copies(
    monkeypatch,
):
    # Three rows a chunk: the rewrite, the masks and the survivors cross chunk
    # boundaries, and the kept records are the same as one pass over every row.
    monkeypatch.setattr(filters, "TEXT_CHUNK", 3)
    records = frame(
        ("写一首关于秋天的诗", "", ""),  # length: the output is empty
        ("写一首关于秋天的诗", "", "秋风起"),  # first surviving copy: kept
        ("请GPT解释光合作用", "", "植物把光变成养分"),  # rewritten to 解释光合作用
        ("写一首关于秋天的诗", "", "落叶黄"),  # repeats row 1: dropped
        ("解释光合作用", "", "见上"),  # repeats row 2 once rewritten: dropped
        ("描述第一张图片", "", ""),  # blacklist (and length, which comes later)
        ("介绍一下长城的历史", "", "长城始建于春秋"),
    )
    rules = _rules(blacklist={"terms": ["图片"]})
    kept, drops, report = filters.apply_rules(records, rules, examples=3)
    assert kept["instruction"].tolist() == [
        "写一首关于秋天的诗",
        "解释光合作用",
        "介绍一下长城的历史",
    ]
    assert kept["output"].tolist() == ["秋风起", "植物把光变成养分", "长城始建于春秋"]
    assert kept.index.equals(pd.RangeIndex(3))
    assert drops[["instruction", "rule"]].values.tolist() == [
        ["描述第一张图片", "blacklist"],
        ["写一首关于秋天的诗", "length"],
        ["写一首关于秋天的诗", "exact_duplicates"],
        ["解释光合作用", "exact_duplicates"],
    ]
    counts = {row["rule"]: (row["input"], row["dropped"]) for row in report}
    assert counts["blacklist"] == (7, 1) and counts["length"] == (6, 1)
    assert counts["exact_duplicates"] == (5, 2)
    assert report[-1]["examples"][1]["instruction"] == "解释光合作用"
