"""Typed settings of the evaluate stage: one class per block of ``evaluate:``.

Defaults live in ``conf/base/parameters_evaluate.yml``; nodes build these with
:func:`belle_kedro.common.config.build` and the dotted key (``evaluate.report``), and
hand the typed object to the domain modules beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from belle_kedro.common.config import InvalidSetting, Settings, setting
from belle_kedro.pipelines.evaluate.judge_settings import JudgeSettings

# The offline scores a table can be built on (described in scores.OFFLINE_SCORES).
OfflineScore = Literal["rouge_l", "char_f1", "number_match", "reference_token_prob"]
# The champion rules (described in champion.CHAMPION_RULES).
ChampionRule = Literal["smallest_not_worse_than_best", "best_point_estimate"]
ChampionMetric = Literal["macro", "macro_excl"]


@dataclass(frozen=True)
class QuestionsSettings(Settings):
    """``evaluate.questions``: which eval-set questions every variant answers."""

    max_per_class: int | None = setting(
        "null = the whole eval set; an int = a seeded sample of that many per class"
    )
    seed: int = setting("seed of the per-class sample")

    def check(self) -> None:
        if self.max_per_class is not None and self.max_per_class < 1:
            raise InvalidSetting("max_per_class", "must be ≥ 1 or null")


@dataclass(frozen=True)
class GenerationSettings(Settings):
    """``evaluate.generation``: how each registered model answers and scores."""

    temperature: float = setting("sampling temperature; ≤ 0.01 decodes greedily")
    top_p: float = setting("nucleus sampling mass (ignored when greedy)")
    max_new_tokens: int = setting("most tokens one answer may have")
    batch_size: int = setting("prompts per generation and scoring batch")
    seed: int = setting("torch seed set before answering (fixes any sampling)")
    device: str = setting("auto (the GPU when there is one), cpu, cuda or cuda:N")
    dtype: str = setting("torch dtype of the weights while answering and scoring")

    def check(self) -> None:
        if self.max_new_tokens < 1:
            raise InvalidSetting("max_new_tokens", "must be ≥ 1")
        if self.batch_size < 1:
            raise InvalidSetting("batch_size", "must be ≥ 1")


@dataclass(frozen=True)
class ScoringSettings(Settings):
    """``evaluate.scoring``: the offline metrics and the score used when the judge is off."""

    offline_score: OfflineScore = setting(
        "the table's score when the judge is off (see scores.OFFLINE_SCORES)"
    )
    number_match_classes: tuple[str, ...] = setting(
        "classes whose answers are checked for the standard answer's final number"
    )


@dataclass(frozen=True)
class PublishedSettings(Settings):
    """``evaluate.report.published``: BELLE's published overall scores per train size."""

    label: str = setting("how the report and the scaling plot name these scores")
    eval_set_digest: str = setting(
        "eval_set_digest of the eval set they were measured on; shown only on it"
    )
    overall: dict[str, float] = setting("overall score per training-set size")

    def check(self) -> None:
        for size in self.overall:
            if not size.isdigit():
                raise InvalidSetting(f"overall.{size}", "must be a training-set size")

    @property
    def by_size(self) -> dict[int, float]:
        """``overall`` keyed by the training-set size as a number."""
        return {int(size): value for size, value in self.overall.items()}


@dataclass(frozen=True)
class ReportSettings(Settings):
    """``evaluate.report``: bootstrap, macro average and published scores."""

    bootstrap_resamples: int = setting("bootstrap resamples per interval")
    confidence: float = setting("confidence level of every interval, in (0, 1)")
    seed: int = setting("bootstrap seed (each cell derives its own from it)")
    macro_exclusions: tuple[str, ...] = setting(
        "classes the second macro average leaves out (BELLE: math, code)"
    )
    published: PublishedSettings | None = setting(
        "BELLE's published scores, shown only on BELLE's eval set; null = none"
    )

    def check(self) -> None:
        if self.bootstrap_resamples < 1:
            raise InvalidSetting("bootstrap_resamples", "must be ≥ 1")
        if not 0.0 < self.confidence < 1.0:
            raise InvalidSetting("confidence", "must lie strictly between 0 and 1")


@dataclass(frozen=True)
class ChampionSettings(Settings):
    """``evaluate.champion``: the rule that crowns a variant and the alias it gets."""

    alias: str = setting("registry alias set on the champion's model version")
    metric: ChampionMetric = setting("macro or macro_excl")
    rule: ChampionRule = setting("see champion.CHAMPION_RULES")


@dataclass(frozen=True)
class EvaluateSettings(Settings):
    """The whole ``evaluate`` block, built for every env at session start."""

    questions: QuestionsSettings = setting("which questions are answered")
    generation: GenerationSettings = setting("how the models answer")
    judge: JudgeSettings = setting("the LLM judge, its backend and its template")
    scoring: ScoringSettings = setting("offline metrics and score")
    report: ReportSettings = setting("bootstrap, macro and published scores")
    champion: ChampionSettings = setting("champion rule and alias")
