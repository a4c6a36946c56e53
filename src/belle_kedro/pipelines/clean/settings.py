"""Typed settings of the clean pipeline: the whole ``clean`` block, one class per block.

Defaults live in ``conf/base/parameters_clean.yml``; docs/clean.md explains each key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from belle_kedro.common.config import InvalidSetting, Settings, setting


@dataclass(frozen=True)
class RuleSettings(Settings):
    """What every rule takes: the switch. Subclasses add the rule's own options."""

    enabled: bool = setting("run this rule (false: report it with 0 drops)")

    def options(self) -> dict[str, Any]:
        """The rule's own options, as keyword arguments of its function in ``rules.RULES``."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name != "enabled"
        }


@dataclass(frozen=True)
class NoInputMarkerSettings(RuleSettings):
    """``clean.rules.no_input_marker``: inputs holding a marker become empty."""

    markers: tuple[str, ...] = setting(
        "matched case-sensitively, anywhere in the input"
    )


@dataclass(frozen=True)
class BlacklistSettings(RuleSettings):
    """``clean.rules.blacklist``: drop records naming a term."""

    terms: tuple[str, ...] = setting("searched in instruction + input + output")
    case_sensitive: bool = setting("BELLE's true; false also catches ChatGPT, HTTP")


@dataclass(frozen=True)
class ModelAddressSettings(RuleSettings):
    """``clean.rules.model_address``: rewrite phrases addressing the model, drop leftovers."""

    rewrites: tuple[str, ...] = setting(
        "removed verbatim from the instruction, in order"
    )
    strip_patterns: tuple[str, ...] = setting(
        "regexes (case-insensitive) removed after the rewrites"
    )
    mention_terms: tuple[str, ...] = setting(
        "a record whose instruction or input still names one is dropped"
    )
    case_sensitive: bool = setting("match mention_terms case-sensitively (BELLE's)")


@dataclass(frozen=True)
class LengthSettings(RuleSettings):
    """``clean.rules.length``: BELLE's length limits."""

    min_instruction_chars: int = setting("shorter instructions are dropped")
    max_instruction_chars_with_input: int = setting(
        "instruction length limit when the record has an input"
    )
    max_instruction_chars_with_example: int = setting(
        "the limit when the instruction gives an example (example_markers)"
    )
    example_markers: tuple[str, ...] = setting("words that mark an example")
    max_output_chars: int | None = setting("longer outputs are dropped; null: no bound")


@dataclass(frozen=True)
class LanguageSettings(RuleSettings):
    """``clean.rules.language``: a Chinese instruction with a mostly English answer."""

    chinese_instruction_min_cjk: float = setting(
        "share of the instruction's letters that are CJK for it to count as Chinese"
    )
    min_english_words: int = setting("Latin words needed to call a text English")
    english_word_share: float = setting("and their least share of all words")
    sample_chars: int = setting("judged on the first N characters of input/output")
    exempt_keywords: tuple[str, ...] = setting(
        "instructions naming one (translation, code) are exempt"
    )


@dataclass(frozen=True)
class MissingInputSettings(RuleSettings):
    """``clean.rules.missing_input``: an instruction about a text nobody gave."""

    reference_pattern: str = setting("regex: the instruction points at a text")
    inline_content_pattern: str = setting("regex: the instruction carries it inline")


@dataclass(frozen=True)
class ExactDuplicatesSettings(RuleSettings):
    """``clean.rules.exact_duplicates``: repeats of a normalised instruction + input."""


@dataclass(frozen=True)
class RulesSettings(Settings):
    """``clean.rules``: every rule, run in the order of these fields (BELLE's order)."""

    no_input_marker: NoInputMarkerSettings = setting("empty inputs that say 无输入")
    blacklist: BlacklistSettings = setting("BELLE's blacklist")
    model_address: ModelAddressSettings = setting("BELLE's model-address rewrites")
    length: LengthSettings = setting("BELLE's length limits")
    language: LanguageSettings = setting("Chinese instruction, English answer")
    missing_input: MissingInputSettings = setting("refers to a text it lacks")
    exact_duplicates: ExactDuplicatesSettings = setting("exact repeats")

    def in_order(self) -> list[tuple[str, RuleSettings]]:
        """``(rule name, its settings)`` in the order the rules run."""
        return [
            (field.name, getattr(self, field.name))
            for field in dataclasses.fields(self)
        ]


@dataclass(frozen=True)
class NearDuplicatesSettings(Settings):
    """``clean.near_duplicates``: Alpaca's rule against earlier records and seed tasks."""

    enabled: bool = setting("run the pass")
    threshold: float = setting("char-level ROUGE-L F at which a record is dropped")
    include_input: bool = setting("compare instruction + input (Alpaca: instruction)")
    against_seed_tasks: bool = setting("seed tasks count as earlier kept records")


@dataclass(frozen=True)
class DecontaminationSettings(Settings):
    """``clean.decontamination``: drop records repeating a question of the eval set."""

    enabled: bool = setting("run the pass")
    threshold: float = setting("char-level ROUGE-L F against a question")
    include_input: bool = setting("compare instruction + input")


@dataclass(frozen=True)
class MinHashSettings(Settings):
    """``clean.matching.minhash``: the candidate stage of both passes (docs/clean.md)."""

    permutations: int = setting("MinHash values per key, cut into bands")
    rows_per_band: int = setting("values per band; fewer: more recall, more candidates")
    bucket_neighbours: int = setting(
        "earlier members of a bucket paired with each record"
    )
    seed: int = setting("fixes every hash")

    @property
    def bands(self) -> int:
        """Bands per signature (whole bands only)."""
        return self.permutations // self.rows_per_band

    def check(self) -> None:
        if self.rows_per_band < 1:
            raise InvalidSetting("rows_per_band", "must be ≥ 1")
        if self.permutations < self.rows_per_band:
            raise InvalidSetting("permutations", "must be ≥ rows_per_band")
        if self.bucket_neighbours < 1:
            raise InvalidSetting("bucket_neighbours", "must be ≥ 1")


@dataclass(frozen=True)
class MatchingSettings(Settings):
    """``clean.matching``: how both passes find their pairs."""

    workers: int | None = setting("processes/threads; null: every core")
    minhash: MinHashSettings = setting("the MinHash/LSH candidate stage")


@dataclass(frozen=True)
class ClassifierSettings(Settings):
    """``clean.classifier``: the task-class model (char n-gram TF-IDF + linear SVM)."""

    seed: int = setting("seeds the held-out split and the SVM")

    ngram_min: int = setting("shortest character n-gram")
    ngram_max: int = setting("longest character n-gram")
    test_fraction: float = setting("share of the labelled texts held out for accuracy")

    def check(self) -> None:
        if not 1 <= self.ngram_min <= self.ngram_max:
            raise InvalidSetting("ngram_min", "must be ≥ 1 and ≤ ngram_max")
        if not 0.0 < self.test_fraction < 1.0:
            raise InvalidSetting("test_fraction", "must be in (0, 1)")


@dataclass(frozen=True)
class CleanSettings(Settings):
    """The whole ``clean`` block."""

    report_examples: int = setting("dropped records shown per step in clean_report")
    engine: Literal["local", "ray"] = setting(
        "where the pair-finding blocks run: local processes, or Ray tasks"
    )
    rules: RulesSettings = setting("BELLE's rule filters, then ours")
    near_duplicates: NearDuplicatesSettings = setting("Alpaca's near-duplicate pass")
    decontamination: DecontaminationSettings = setting("the eval-set pass")
    matching: MatchingSettings = setting("pair finding shared by both passes")
    classifier: ClassifierSettings = setting(
        "predicts each record's task class (the report's per-class counts, the review)"
    )
