"""Near-duplicate removal: agreement with brute force, exact verification, seeds, order, CJK."""

from __future__ import annotations

import importlib.util
import json
import random
import re

import numpy as np
import pandas as pd
import pytest

from belle_kedro.common.config import ParameterError, build
from belle_kedro.common.text import rouge_l, rouge_l_f
from belle_kedro.pipelines.clean import dedup
from belle_kedro.pipelines.clean.settings import MinHashSettings
from tests.support.brute_force import exhaustive_matches, exhaustive_near_duplicates

MINHASH = MinHashSettings(
    permutations=512, rows_per_band=5, bucket_neighbours=8, seed=0
)

# Original sentence pieces for a built-in fixture (no third-party text).
SUBJECTS = [
    "春天的公园",
    "一只橘猫",
    "城市的夜晚",
    "老师的讲台",
    "海边的小镇",
    "秋天的稻田",
    "雨后的街道",
    "冬日的湖面",
]
TASKS = [
    "写一首短诗描写{}",
    "用三句话介绍{}",
    "为{}写一段广告语",
    "列出关于{}的五个形容词",
    "以{}为题编一个小故事",
]
FILLERS = ["请", "一下", "，", "的", "简单地"]


def builtin_fixture(size: int = 1200, seed: int = 7) -> list[str]:
    """Seeded instructions with many near duplicates (edits of shared templates)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(size):
        text = rng.choice(TASKS).format(rng.choice(SUBJECTS))
        for _ in range(rng.randint(0, 4)):
            at = rng.randrange(len(text))
            if rng.random() < 0.5:
                text = text[:at] + rng.choice(FILLERS) + text[at:]
            else:
                text = text[:at] + text[at + 1 :]
        texts.append(text)
    return texts


def distinct_fixture(size: int, seed: int = 5) -> list[str]:
    """Random CJK strings (rarely alike), one in ten followed by a one-edit copy."""
    rng = random.Random(seed)
    texts: list[str] = []
    while len(texts) < size:
        text = "".join(
            chr(rng.randrange(0x4E00, 0x4E00 + 3000)) for _ in range(rng.randint(8, 30))
        )
        texts.append(text)
        if rng.random() < 0.1:
            at = rng.randrange(len(text))
            texts.append(text[:at] + text[at + 1 :])
    return texts[:size]


def test_rouge_score_tokenizer_would_erase_chinese_ours_does_not():
    first, second = "请写一首关于春天的诗", "写一首关于春天的短诗"
    # rouge-score's default tokenizer: lower case, then every char outside [a-z0-9]
    # becomes a space; Chinese text is left with no tokens at all.
    assert re.sub(r"[^a-z0-9]+", " ", first.lower()).split() == []
    keys = dedup.comparison_keys([first, second])
    assert keys.to_pylist() == [first, second]
    assert rouge_l(first, second) == pytest.approx(2 * 9 / 20)  # LCS 写一首关于春天的诗
    assert rouge_l(first, "股市大涨") == 0.0
    if importlib.util.find_spec("rouge_score"):  # the real library, when installed
        from rouge_score import rouge_scorer

        assert (
            rouge_scorer.RougeScorer(["rougeL"]).score(first, second)["rougeL"].fmeasure
            == 0.0
        )


def test_repeated_characters_count_once_per_occurrence():
    # Found at 20K of the bench corpus: ROUGE-L 0.7 from the shared underscores alone.
    # Their character SETS have Jaccard 0.09, so set MinHash almost never paired them;
    # as multisets (14 of 16 underscores shared) they reach 0.54.
    earlier, later = "在校长是" + "_" * 14, "我老公和对比" + "_" * 16
    assert rouge_l(earlier, later) >= 0.7
    found = dedup.find_near_duplicates([earlier, later], threshold=0.7, minhash=MINHASH)
    assert found.keep.tolist() == [True, False]
    assert found.duplicate_of[1] == 0


def test_agrees_with_brute_force_on_builtin_fixture_and_is_order_stable():
    keys = dedup.comparison_keys(builtin_fixture()).to_pylist()
    found = dedup.find_near_duplicates(keys, threshold=0.7, minhash=MINHASH)
    expected = exhaustive_near_duplicates(keys, threshold=0.7)
    assert (
        0 < found.keep.sum() < len(keys) / 2
    )  # the fixture really has near duplicates
    # Heavy edits put some pairs at the candidate stage's bound (multiset Jaccard
    # 0.54): a handful of the ~1,100 drops may be missed, never more than 1 %.
    assert (found.keep != expected).sum() <= 0.01 * (~expected).sum()
    again = dedup.find_near_duplicates(list(keys), threshold=0.7, minhash=MINHASH)
    assert again.keep.tolist() == found.keep.tolist()
    # Each dropped record points at an EARLIER KEPT record that reaches the threshold.
    for position in np.flatnonzero(~found.keep):
        earlier = found.duplicate_of[position]
        assert earlier < position and found.keep[earlier]
        assert rouge_l(keys[position], keys[earlier]) >= 0.7
        assert found.score[position] == pytest.approx(
            rouge_l(keys[position], keys[earlier])
        )


@pytest.mark.slow
def test_workers_do_not_change_the_result_and_every_drop_is_verified():
    keys = dedup.comparison_keys(distinct_fixture(24_000)).to_pylist()
    found = dedup.find_near_duplicates(keys, threshold=0.7, minhash=MINHASH, workers=2)
    single = dedup.find_near_duplicates(
        keys[:20_000], threshold=0.7, minhash=MINHASH, workers=1
    )
    assert found.keep[:20_000].tolist() == single.keep.tolist()
    dropped = np.flatnonzero(~found.keep)
    assert len(dropped) > 1_000 and found.verified >= len(dropped)
    for position in dropped:  # precision: exact scores only
        partner = found.duplicate_of[position]
        assert partner < position and found.keep[partner]
        assert rouge_l(keys[position], keys[partner]) >= 0.7


def test_minhash_settings_are_checked_under_the_key_the_user_writes():
    values = {"permutations": 4, "rows_per_band": 5, "bucket_neighbours": 1, "seed": 0}
    with pytest.raises(
        ParameterError,
        match="^clean.matching.minhash.permutations must be ≥ rows_per_band$",
    ):
        build(MinHashSettings, values, "clean.matching.minhash")
    # Built by hand (bench, tests), the same rule holds when a pass starts.
    with pytest.raises(ValueError, match="permutations must be ≥ rows_per_band"):
        dedup.find_near_duplicates(
            ["a"], threshold=0.7, minhash=MinHashSettings(**values)
        )


def test_first_of_a_pair_wins_and_seeds_count_as_kept():
    keys = dedup.comparison_keys(
        [
            "写一首关于春天的诗",
            "请写一首关于春天的诗",
            "介绍一下长城的历史",
            "介绍一下长城",
            "",
            "",
        ]
    )
    found = dedup.find_near_duplicates(
        keys,
        reference_keys=dedup.comparison_keys(["介绍长城的历史"]),
        threshold=0.7,
        minhash=MINHASH,
    )
    # 介绍一下长城 vs the seed: LCS 4 -> 8/13 < 0.7, but vs the dropped 介绍一下长城的历史
    # it would be 0.8: dropped records never count. Empty keys match nothing.
    assert found.keep.tolist() == [True, False, False, True, True, True]
    assert found.duplicate_of.tolist()[:4] == [-1, 0, 6, -1]  # 6 = n + seed index 0
    reversed_found = dedup.find_near_duplicates(
        keys[:2][::-1], threshold=0.7, minhash=MINHASH
    )
    assert reversed_found.keep.tolist() == [True, False]


def test_include_input_changes_what_is_compared():
    instructions, inputs = (
        ["翻译成英文", "翻译成英文"],
        ["我喜欢猫", "今天下雨了，我们改天再去公园散步吧"],
    )
    assert not dedup.find_near_duplicates(
        dedup.comparison_keys(instructions), threshold=0.7, minhash=MINHASH
    ).keep[1]
    assert dedup.find_near_duplicates(
        dedup.comparison_keys(instructions, inputs), threshold=0.7, minhash=MINHASH
    ).keep.all()


def test_rejects_a_threshold_outside_zero_one():
    with pytest.raises(ValueError, match="threshold"):
        dedup.find_near_duplicates(["a"], threshold=1.5, minhash=MINHASH)


@pytest.mark.slow
@pytest.mark.shared
def test_matches_brute_force_on_5000_shared_records(shared_data):
    pool = []
    for name in (
        "alpaca_zh_openchinese_v3.json",
        "alpaca_zh_carbonz0.json",
        "huatuo_med_zh.json",
        "lawyer_llama_legal.json",
    ):
        pool += [
            record["instruction"]
            for record in json.loads((shared_data / name).read_text(encoding="utf-8"))
        ]
    keys = dedup.comparison_keys(random.Random(2024).sample(pool, 5000)).to_pylist()
    found = dedup.find_near_duplicates(keys, threshold=0.7, minhash=MINHASH)
    expected = exhaustive_near_duplicates(keys, threshold=0.7)
    assert found.keep.sum() < len(keys)
    assert (found.keep != expected).sum() <= 0.01 * (~expected).sum()


def _edited(rng: random.Random, text: str, alphabet: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(0, 4)):
        position = rng.randint(0, len(chars))
        if chars and rng.random() < 0.5:
            del chars[min(position, len(chars) - 1)]
        else:
            chars.insert(position, rng.choice(alphabet))
    return "".join(chars)


def test_the_class_count_bound_never_rules_out_a_near_duplicate():
    """The candidate stage's bound is exact: every pair at the threshold passes it."""
    rng = random.Random(7)
    alphabet = "春夏秋冬的一是了我请写_abc"
    first, second = [], []
    for _ in range(20_000):
        # Short keys, repeated characters and keys past the 255-character packing limit.
        length = rng.choice([rng.randint(1, 30), rng.randint(240, 300)])
        text = "".join(rng.choices(alphabet, k=length))
        first.append(text)
        second.append(
            _edited(rng, text, alphabet)
            if rng.random() < 0.7
            else "".join(rng.choices(alphabet, k=rng.randint(1, 30)))
        )
    keys = first + second
    bound = dedup._UpperBound.of(dedup.as_texts(keys))
    left = np.arange(len(first))
    right = left + len(first)
    scores = np.array([rouge_l_f(a, b) for a, b in zip(first, second, strict=True)])
    for threshold in (0.5, 0.7, 0.9):
        passes = bound.may_reach(left, right, threshold)
        assert passes[scores >= threshold].all()
        assert not passes[scores < threshold].all()  # it rules pairs out, too


def test_first_copies_match_pandas_duplicated():
    rng = random.Random(11)
    keys = [rng.choice(["", "a", "b", "春", "春天", "𠀀"]) for _ in range(500)]
    first = dedup.first_copies(dedup.as_texts(keys))
    assert [keys[position] for position in first] == keys
    repeats = first != np.arange(len(keys))
    assert repeats.tolist() == pd.Series(keys).duplicated(keep="first").tolist()
    assert len(dedup.first_copies(dedup.as_texts([]))) == 0


# One minhash a band and every bucket member paired: on a few dozen keys the
# candidates are every pair the exact bound lets through, so the outcome must equal
# the exhaustive one pair for pair (matches and scores, not only what is kept).
EVERY_PAIR = MinHashSettings(
    permutations=256, rows_per_band=1, bucket_neighbours=64, seed=0
)


def decision_fixture() -> tuple[list[str], list[str]]:
    """Distinct non-empty keys with many near duplicates, and references, with three
    shapes of pair the greedy rule must get right (each ROUGE-L F 0.8 or 0.6):

    - ``uvcdefghij`` and ``abcdefghxy`` stay (0.6 apart); ``abcdefghij`` is 0.8 from
      both: its match is the earlier one;
    - ``klmnopqrst`` is 0.8 from two references 0.6 apart;
    - reference ``αβγδεζηθλμ`` is 0.8 from the earlier reference ``αβγδεζηθικ``, yet
      references are never dropped: ``αβγδεζλμνξ`` (0.8 from it, 0.6 from the
      other) is its duplicate;
    - the first key is a duplicate of a reference too.
    """
    keys = ["στυφχψωαβγ", *builtin_fixture(90)] + [
        "uvcdefghij",
        "abcdefghxy",
        "abcdefghij",
        "klmnopqrst",
        "αβγδεζλμνξ",
    ]
    references = [
        "写一首短诗描写春天的公园",
        "αβγδεζηθικ",
        "αβγδεζηθλμ",
        "klmnopqrwz",
        "12mnopqrst",
        "στυφχψωαβδ",
    ]
    keys = list(dict.fromkeys(dedup.comparison_keys(keys).to_pylist()))
    return [key for key in keys if key], dedup.comparison_keys(references).to_pylist()


def assert_outcome(
    found: dedup.NearDuplicates,
    keep: list[bool],
    duplicate_of: list[int],
    score: list[float],
) -> None:
    """``found`` is the exhaustive outcome, in the dtypes the clean pass relies on."""
    assert found.keep.tolist() == keep
    assert found.duplicate_of.tolist() == duplicate_of
    assert found.score.tolist() == pytest.approx(score, abs=1e-12)
    assert (found.keep.dtype, found.duplicate_of.dtype, found.score.dtype) == (
        np.dtype(bool),
        np.dtype(np.int64),
        np.dtype(np.float64),
    )


def test_each_drop_names_its_best_kept_partner_as_the_exhaustive_rule_does():
    keys, references = decision_fixture()
    found = dedup.find_near_duplicates(
        keys, references, threshold=0.7, minhash=EVERY_PAIR, workers=1
    )
    keep, duplicate_of, score = exhaustive_matches(keys, references, threshold=0.7)
    assert 0 < sum(keep) < len(keys) - 10  # many drops, some to a reference
    assert any(match >= len(keys) for match in duplicate_of)
    assert_outcome(found, keep, duplicate_of, score)
    every = references + keys
    assert found.verified == sum(
        rouge_l_f(a, b) >= 0.7
        for position, a in enumerate(every)
        for b in every[position + 1 :]
    )
    # The bound lets through pairs that verification then rejects.
    assert found.candidates > found.verified


@pytest.mark.parametrize("block", [1, 2, 3, 7])
def test_the_decision_is_the_same_whatever_its_block_of_pairs(
    monkeypatch: pytest.MonkeyPatch, block: int
):
    keys, references = decision_fixture()
    whole = dedup.find_near_duplicates(
        keys, references, threshold=0.7, minhash=EVERY_PAIR, workers=1
    )
    # The greedy decision walks the verified pairs in blocks (1M at a time); a block
    # must end with a whole group of one record's partners at any size.
    monkeypatch.setattr(dedup, "_DECIDE_PAIRS", block)
    blocked = dedup.find_near_duplicates(
        keys, references, threshold=0.7, minhash=EVERY_PAIR, workers=1
    )
    assert blocked.keep.tolist() == whole.keep.tolist()
    assert blocked.duplicate_of.tolist() == whole.duplicate_of.tolist()
    assert blocked.score.tolist() == whole.score.tolist()


def test_reference_matches_drop_keys_near_a_reference_and_never_near_each_other():
    keys, references = decision_fixture()
    keys += keys[:3]  # repeats of keys: still only references count
    found = dedup.find_reference_matches(
        keys,
        references,
        threshold=0.7,
        minhash=EVERY_PAIR,
        workers=1,
        progress=None,
        engine="local",
    )
    keep, duplicate_of, score = exhaustive_matches(
        keys, references, threshold=0.7, references_only=True
    )
    assert 0 < keep.count(False) < 20  # some keys meet a reference, most do not
    assert_outcome(found, keep, duplicate_of, score)
    assert found.verified == sum(
        rouge_l_f(key, reference) >= 0.7 for key in keys for reference in references
    )
    assert found.candidates > found.verified
    with pytest.raises(ValueError, match="threshold"):
        dedup.find_reference_matches(
            keys,
            references,
            threshold=0.0,
            minhash=EVERY_PAIR,
            workers=1,
            progress=None,
            engine="local",
        )
