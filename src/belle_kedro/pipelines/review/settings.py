"""Typed settings of the review pipeline: the whole ``review`` block.

Defaults live in ``conf/base/parameters_review.yml``; docs/review.md explains them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from belle_kedro.common.config import InvalidSetting, Settings, setting


@dataclass(frozen=True)
class SampleSettings(Settings):
    """``review.sample``: how many records of each stratum reviewers see."""

    kept_per_class: int = setting("kept records drawn per predicted task class")
    dropped_per_rule: int = setting("dropped records drawn per rule that dropped them")
    borderline: int = setting(
        "kept records the rules were least sure of (near-duplicate score just under "
        "the threshold, instruction length near a limit), at most"
    )
    duplicate_margin: float = setting(
        "a kept record is borderline when its best near-duplicate score is within "
        "this of clean.near_duplicates.threshold"
    )
    length_margin: int = setting(
        "a kept record is borderline when its instruction length is within this many "
        "characters of a clean.rules.length limit"
    )

    def check(self) -> None:
        for key in (
            "kept_per_class",
            "dropped_per_rule",
            "borderline",
            "length_margin",
        ):
            if getattr(self, key) < 0:
                raise InvalidSetting(key, "must be ≥ 0")
        if not 0.0 <= self.duplicate_margin < 1.0:
            raise InvalidSetting("duplicate_margin", "must be in [0, 1)")


@dataclass(frozen=True)
class ServerSettings(Settings):
    """``review.label_studio``: where the Label Studio project lives."""

    url: str | None = setting(
        "Label Studio's address (http://127.0.0.1:8080); null: read the exported "
        "JSON file (catalog review_export) instead of the API"
    )
    token_env: str = setting("environment variable holding the API token")
    project_title: str = setting("title of the project push creates or reuses")
    timeout_s: float = setting("seconds per API request")


@dataclass(frozen=True)
class ReviewSettings(Settings):
    """The whole ``review`` block."""

    enabled: bool = setting(
        "false: split reads clean_instructions; true: the review stage runs and "
        "split reads reviewed_instructions"
    )
    seed: int = setting("seeds the sample's draws")
    sample: SampleSettings = setting("sizes of the review sample's strata")
    reject_reasons: tuple[str, ...] = setting("reasons a reviewer picks from on reject")
    unreviewed: Literal["keep", "drop"] = setting(
        "what happens to kept records no reviewer decided on"
    )
    restore_false_drops: bool = setting(
        "put back dropped records that reviewers accepted"
    )
    label_studio: ServerSettings = setting("the Label Studio server")

    def check(self) -> None:
        if not self.reject_reasons:
            raise InvalidSetting("reject_reasons", "must name at least one reason")
