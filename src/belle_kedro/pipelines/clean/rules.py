"""Normalisation and BELLE's rule filters for instruction records.

Every rule is a small named function over a DataFrame with the record columns
(``instruction``, ``input``, ``output`` strings) that returns a boolean Series, True for
a record to drop; :func:`address_model` also rewrites instructions. :data:`RULES` maps
the names used in ``parameters_clean.yml`` to them (each a :class:`Rule`), and
:func:`apply_rules` runs them in the order of
:class:`~belle_kedro.pipelines.clean.settings.RulesSettings` and reports what each
dropped. All rules are vectorised or touch only the rows that need a closer look, so a
million records take seconds, and they hold a chunk's temporaries at most, so ten
million fit one machine.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from belle_kedro.common.records import (
    RECORD_COLUMNS,
    require_columns,
    select_rows,
    without_skipped,
)
from belle_kedro.common.text import (
    STR_DTYPE,
    TEXT_CHUNK,
    as_texts,
    cjk_ratio,
    map_texts,
    similarity_key,
    text_series,
)
from belle_kedro.pipelines.clean.dedup import first_copies
from belle_kedro.pipelines.clean.settings import RulesSettings

_PROGRESS_FROM = 50_000  # records; smaller inputs finish before a bar would help
EXAMPLE_CHARS = 200  # each text of a report example is cut to this length
DROP_COLUMNS = ("rule", "partner", "score")  # what clean_drops adds to a record


def dropped_rows(
    records: pd.DataFrame,
    mask: Sequence[bool] | pd.Series | Any,
    rule: str,
    partners: pd.Series | None = None,
    scores: Any = None,
) -> pd.DataFrame:
    """The records ``mask`` drops, with the rule that dropped them and, for a matching
    pass, the kept record, seed task or eval question each repeats and that pair's
    ROUGE-L F (empty and NaN for a rule)."""
    rows = select_rows(records, mask)
    return rows.assign(
        rule=rule,
        partner=pd.Series("", index=rows.index, dtype=STR_DTYPE)
        if partners is None
        else partners.set_axis(rows.index).astype(STR_DTYPE),
        score=scores if scores is not None else float("nan"),
    )


def _safe_nfkc_table() -> dict[int, str]:
    """NFKC only where it cannot change meaning or Chinese typography.

    Folded: full-width ASCII letters and digits (Ａ１ -> A1), half-width katakana, Kangxi
    and CJK radicals and compatibility ideographs (⽇ -> 日), odd spaces. Kept: full-width
    punctuation (Chinese text uses ，。：？), super/subscripts (x² is not x2), circled
    and fraction digits (① is not 1), ligature-like symbols. Zero-width marks go; a
    lone surrogate becomes U+FFFD.
    """
    table: dict[int, str] = {}
    wanted = (
        range(0xFF10, 0xFF1A),  # full-width digits
        range(0xFF21, 0xFF3B),  # full-width upper case
        range(0xFF41, 0xFF5B),  # full-width lower case
        range(0xFF65, 0xFFA0),  # half-width katakana
        range(0x2E80, 0x2FE0),  # CJK radicals supplement + Kangxi radicals
        range(0xF900, 0xFB00),  # CJK compatibility ideographs
        range(0x2F800, 0x2FA20),  # CJK compatibility ideographs supplement
    )
    for block in wanted:
        for code in block:
            folded = unicodedata.normalize("NFKC", chr(code))
            if folded != chr(code):
                table[code] = folded
    for code in range(0x3001):  # every Unicode space lies below U+3001
        char = chr(code)
        if char.isspace() and char not in "\n\r\t ":
            table[code] = " "
    for invisible in ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"):
        table[ord(invisible)] = ""
    for surrogate in range(0xD800, 0xE000):  # lone halves cannot be encoded or stored
        table[surrogate] = "\ufffd"
    return table


_NFKC_SAFE = _safe_nfkc_table()
# Most texts need no folding; one regex search is far cheaper than str.translate.


def _char_class(codes: Sequence[int]) -> re.Pattern[str]:
    """A regex class matching exactly ``codes``, written as ranges."""
    ranges: list[list[int]] = []
    for code in sorted(codes):
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return re.compile(
        "["
        + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ranges)
        + "]"
    )


_FOLDABLE = _char_class(list(_NFKC_SAFE))
_LINE_ENDINGS = re.compile(r"\r\n?")
_INNER_SPACE = re.compile(
    r"(?<=\S)(?: [ \t]+|\t[ \t]*)(?=\S)"
)  # not single spaces: no-op
_TRAILING_SPACE = re.compile(r"[ \t]+(?=\n|$)")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalise_text(text: str) -> str:
    """The safe part of NFKC + NFC, then whitespace folding that keeps line structure.

    Idempotent: a second pass never changes the result. Inner runs of spaces fold to one, line ends and the whole text are trimmed, at most
    one blank line survives; leading indentation stays (code in outputs needs it).
    """
    # Fold first, compose after: folding half-width kana or dropping a zero-width mark
    # can leave a base and a combining mark side by side, which NFC then joins; in the
    # other order a second pass would still change the text.
    if _FOLDABLE.search(text):
        text = text.translate(_NFKC_SAFE)
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    # Substring tests first: most texts have nothing to fold, and a regex scan of a long
    # output costs far more than these C-level checks.
    if "\r" in text:
        text = _LINE_ENDINGS.sub("\n", text)
    if "\t" in text or "  " in text:
        text = _INNER_SPACE.sub(" ", text)
    if " \n" in text or "\t\n" in text:
        text = _TRAILING_SPACE.sub("", text)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def normalise_records(records: pd.DataFrame) -> pd.DataFrame:
    """Normalised copy of ``records``: text columns cleaned, missing input -> ""."""
    require_columns(records, ("instruction", "output"), "instruction records")
    normalised = records.copy()
    if "input" not in normalised.columns:
        normalised["input"] = ""
    for column in RECORD_COLUMNS:
        # An Arrow-backed str column even with no rows, so every rule's .str accessor
        # works on 0 records; built a chunk at a time (common.text.map_texts).
        normalised[column] = text_series(
            map_texts(
                _normalised_or_empty,
                normalised[column],
                progress=None
                if len(normalised) < _PROGRESS_FROM
                else f"normalise {column}",
            ),
            normalised.index,
        )
    return normalised.reset_index(drop=True)


def _normalised_or_empty(value: Any) -> str:
    return normalise_text(value) if isinstance(value, str) else ""


def _any_term(terms: Sequence[str], case_sensitive: bool = False) -> re.Pattern[str]:
    return re.compile(
        "|".join(re.escape(term) for term in terms),
        0 if case_sensitive else re.IGNORECASE,
    )


def _false(records: pd.DataFrame) -> pd.Series:
    return pd.Series(False, index=records.index, dtype=bool)


def blacklisted(
    records: pd.DataFrame, terms: Sequence[str], case_sensitive: bool
) -> pd.Series:
    """Records naming any term in instruction, input or output (BELLE: case-sensitive)."""
    if not terms:
        return _false(records)
    text = records["instruction"] + "\n" + records["input"] + "\n" + records["output"]
    return text.str.contains(_any_term(terms, case_sensitive), regex=True).astype(bool)


def address_model(
    records: pd.DataFrame,
    rewrites: Sequence[str],
    strip_patterns: Sequence[str],
    mention_terms: Sequence[str],
    case_sensitive: bool,
) -> tuple[pd.DataFrame, pd.Series]:
    """Rewrite phrases addressing the model out of instructions, then flag leftover mentions.

    ``rewrites`` are removed verbatim, one after the other in list order (BELLE's
    ``str.replace`` loop); ``strip_patterns`` are regexes removed afterwards (our
    option). Returns ``(records with rewritten instructions, drop mask)``: a record is
    dropped when its instruction or input still names one of ``mention_terms``.
    """
    rewritten = records.copy()
    instructions = rewritten["instruction"]
    for phrase in rewrites:
        instructions = instructions.str.replace(phrase, "", regex=False)
    for pattern in strip_patterns:
        instructions = instructions.str.replace(
            re.compile(pattern, re.IGNORECASE), "", regex=True
        )
    rewritten["instruction"] = instructions.str.strip()
    if not mention_terms:
        return rewritten, _false(records)
    mention = _any_term(mention_terms, case_sensitive)
    dropped = rewritten["instruction"].str.contains(mention) | rewritten[
        "input"
    ].str.contains(mention)
    return rewritten, dropped.astype(bool)


def empty_no_input_markers(
    records: pd.DataFrame, markers: Sequence[str]
) -> tuple[pd.DataFrame, pd.Series]:
    """Empty every input that contains one of ``markers`` (BELLE: "无输入"); drops nothing."""
    rewritten = records.copy()
    if markers:
        marked = rewritten["input"].str.contains(_any_term(markers, True))
        rewritten.loc[marked, "input"] = ""
    return rewritten, _false(records)


def bad_length(
    records: pd.DataFrame,
    *,
    min_instruction_chars: int,
    max_instruction_chars_with_input: int,
    max_instruction_chars_with_example: int,
    example_markers: Sequence[str],
    max_output_chars: int | None,
) -> pd.Series:
    """BELLE's length rules: instruction too short, or too long beside an input; output empty or too long."""
    instruction_length = records["instruction"].str.len()
    has_input = records["input"].str.len() > 0
    gives_example = (
        records["instruction"].str.contains(_any_term(example_markers))
        if example_markers
        else pd.Series(False, index=records.index)
    )
    limit = pd.Series(max_instruction_chars_with_input, index=records.index).where(
        ~gives_example, max_instruction_chars_with_example
    )
    dropped = instruction_length < min_instruction_chars
    dropped |= has_input & (instruction_length >= limit)
    dropped |= records["output"].str.strip().str.len() == 0
    if max_output_chars is not None:
        dropped |= records["output"].str.len() > max_output_chars
    return dropped


_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def _mostly_english(
    texts: pd.Series,
    min_english_words: int,
    english_word_share: float,
    sample_chars: int,
) -> pd.Series:
    # A Latin word and a CJK character carry roughly as much text, so compare their
    # counts (a letter-based share would call "苹果iPhone 12 Pro" English). Only texts
    # with Latin letters can be English; the rest skip the counting.
    suspects = texts[texts.str.contains("[A-Za-z]", regex=True)].str.slice(
        0, sample_chars
    )
    words = suspects.str.count(_LATIN_WORD.pattern)
    cjk = suspects.str.count(_CJK_CHAR.pattern)
    verdict = pd.Series(False, index=texts.index)
    verdict[suspects.index] = (words >= min_english_words) & (
        words >= english_word_share * (words + cjk)
    )
    return verdict


def wrong_language(
    records: pd.DataFrame,
    *,
    chinese_instruction_min_cjk: float,
    min_english_words: int,
    english_word_share: float,
    exempt_keywords: Sequence[str],
    sample_chars: int,
) -> pd.Series:
    """Chinese instruction whose input or output is mostly English (translation and the like exempt).

    "Chinese": at least ``chinese_instruction_min_cjk`` of the instruction's letters are
    CJK. "Mostly English": within the first ``sample_chars``, at least
    ``min_english_words`` Latin words, making up ``english_word_share`` of all words
    (a CJK character counts as one word).
    """
    chinese = pd.Series(
        [
            cjk_ratio(text) >= chinese_instruction_min_cjk
            for text in records["instruction"]
        ],
        index=records.index,
    )
    if exempt_keywords:
        chinese &= ~records["instruction"].str.contains(_any_term(exempt_keywords))
    candidates = records[chinese]
    english = _mostly_english(
        candidates["input"], min_english_words, english_word_share, sample_chars
    )
    english |= _mostly_english(
        candidates["output"], min_english_words, english_word_share, sample_chars
    )
    dropped = pd.Series(False, index=records.index)
    dropped[candidates.index] = english
    return dropped


def missing_input(
    records: pd.DataFrame, reference_pattern: str, inline_content_pattern: str
) -> pd.Series:
    """Instructions about a text "below"/"given" that neither the input nor the instruction holds."""
    refers = records["instruction"].str.contains(
        re.compile(reference_pattern), regex=True
    )
    inline = records["instruction"].str.contains(
        re.compile(inline_content_pattern, re.DOTALL), regex=True
    )
    return refers & ~inline & (records["input"].str.len() == 0)


def exact_duplicates(
    records: pd.DataFrame, survivors: np.ndarray | None = None
) -> pd.Series:
    """Every repeat of an earlier surviving record's normalised instruction + input
    (``survivors``: the rows earlier rules left; None: every row)."""
    rows = np.arange(len(records)) if survivors is None else np.flatnonzero(survivors)
    keys = map_texts(
        _exact_key,
        records["instruction"].iloc[rows],
        records["input"].iloc[rows],
    )
    repeats = np.zeros(len(records), dtype=bool)
    repeats[rows] = first_copies(as_texts(keys)) != np.arange(len(rows))
    return pd.Series(repeats, index=records.index, dtype=bool)


def _exact_key(text: str, extra: str) -> str:
    return f"{similarity_key(text)}\x00{similarity_key(extra)}"


@dataclass(frozen=True)
class Rule:
    """A rule's function, ``(records, **options) -> (records, drop flags)``.

    A row-local rule judges (and rewrites) each row on its own, so :func:`apply_rules`
    runs it ``TEXT_CHUNK`` rows at a time over every row and ignores the flags of rows
    an earlier rule dropped: its temporaries (a stripped or joined copy of a column)
    stay a chunk's, and no rule copies the surviving records. A rule that is not
    row-local compares rows with each other and gets ``survivors`` instead.
    """

    apply: Callable[..., tuple[pd.DataFrame, pd.Series]]
    row_local: bool = True


def _mask_only(
    check: Callable[..., pd.Series],
) -> Callable[..., tuple[pd.DataFrame, pd.Series]]:
    def rule(records: pd.DataFrame, **options: Any) -> tuple[pd.DataFrame, pd.Series]:
        return records, check(records, **options)

    rule.__name__ = check.__name__
    rule.__doc__ = check.__doc__
    return rule


RULES: dict[str, Rule] = {
    "no_input_marker": Rule(empty_no_input_markers),
    "blacklist": Rule(_mask_only(blacklisted)),
    "model_address": Rule(address_model),
    "length": Rule(_mask_only(bad_length)),
    "language": Rule(_mask_only(wrong_language)),
    "missing_input": Rule(_mask_only(missing_input)),
    "exact_duplicates": Rule(_mask_only(exact_duplicates), row_local=False),
}


def _example(record: pd.Series, max_chars: int) -> dict[str, str]:
    return {column: str(record[column])[:max_chars] for column in RECORD_COLUMNS}


def _run_rule(
    rule: Rule, records: pd.DataFrame, survivors: np.ndarray, options: dict[str, Any]
) -> tuple[pd.DataFrame, np.ndarray]:
    """The records as ``rule`` leaves them and the surviving rows it drops."""
    if not rule.row_local:
        records, whole = rule.apply(records, survivors=survivors, **options)
        return records, whole.to_numpy(dtype=bool) & survivors
    parts: list[pd.DataFrame] = []
    flags: list[np.ndarray] = []
    for start in range(0, max(len(records), 1), TEXT_CHUNK):
        part, part_flags = rule.apply(
            records.iloc[start : start + TEXT_CHUNK], **options
        )
        parts.append(part)
        flags.append(part_flags.fillna(False).to_numpy(dtype=bool))
    # Arrow-backed columns: the concatenation chains the chunks' arrays, copying none.
    records = parts[0] if len(parts) == 1 else pd.concat(parts)
    return records, np.concatenate(flags) & survivors


def apply_rules(
    records: pd.DataFrame, rules: RulesSettings, examples: int
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """Run the rules in order; return the survivors, the dropped records (with
    :data:`DROP_COLUMNS`) and one report row per rule.

    Each report row: ``rule, enabled, input, dropped, examples`` (the first dropped
    records). Rows a reader skipped (``skip_reason``) come first, as ``reader_skipped``
    with their ``reasons`` counted. The survivors are a mask until the end, so the
    records are copied once (the survivors), not once per rule.
    """
    report = []
    records, skipped = without_skipped(records)
    survivors = np.ones(len(records), dtype=bool)
    drops = [dropped_rows(records, ~survivors, "")]
    if skipped:
        # Conversations the reader could not make into one record (multi-turn, …).
        report.append(
            {
                "rule": "reader_skipped",
                "enabled": True,
                "input": len(records) + sum(skipped.values()),
                "dropped": sum(skipped.values()),
                "reasons": skipped,
                "examples": [],
            }
        )
    for name, settings in rules.in_order():
        row: dict[str, Any] = {
            "rule": name,
            "enabled": settings.enabled,
            "input": int(survivors.sum()),
            "dropped": 0,
            "examples": [],
        }
        if settings.enabled:
            records, dropped = _run_rule(
                RULES[name], records, survivors, settings.options()
            )
            drops.append(dropped_rows(records, dropped, name))
            row["dropped"] = len(drops[-1])
            row["examples"] = [
                _example(record, EXAMPLE_CHARS)
                for _, record in drops[-1].head(examples).iterrows()
            ]
            survivors &= ~dropped
        report.append(row)
    return (
        select_rows(records, survivors),
        pd.concat(drops, ignore_index=True),
        report,
    )
