"""Nodes of the review pipeline: sample -> Label Studio tasks -> annotations -> reviewed data.

Each node builds :class:`~belle_kedro.pipelines.review.settings.ReviewSettings` (and,
for the borderline search with clean's settings, ``CleanSettings``) from the raw
blocks it receives.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from belle_kedro.common.config import build
from belle_kedro.common.tracking import as_metrics
from belle_kedro.pipelines.clean.classifier import TaskClassifier
from belle_kedro.pipelines.clean.settings import CleanSettings
from belle_kedro.pipelines.review.annotations import ExportError, read_export, resolve
from belle_kedro.pipelines.review.apply import apply_decisions, decision_counts
from belle_kedro.pipelines.review.quality import filter_quality, quality_metrics
from belle_kedro.pipelines.review.selection import borderline_duplicates, draw_sample
from belle_kedro.pipelines.review.server import LabelStudio
from belle_kedro.pipelines.review.settings import ReviewSettings
from belle_kedro.pipelines.review.tasks import label_config, review_tasks


def _settings(params: Mapping[str, Any]) -> ReviewSettings:
    return build(ReviewSettings, params, "review")


def select_for_review(
    clean_instructions: pd.DataFrame,
    clean_task_classes: pd.DataFrame,
    clean_drops: pd.DataFrame,
    seed_tasks: pd.DataFrame,
    *,
    task_classifier: TaskClassifier,
    clean_params: Mapping[str, Any],
    params: Mapping[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The seeded review sample and what went into it, from clean's outputs of the
    same run: kept records with their classes, dropped ones with rule, partner, score
    and class; ``task_classifier`` (clean's model) names every class the form offers."""
    settings = _settings(params)
    clean = build(CleanSettings, clean_params, "clean")
    if len(clean_task_classes) != len(clean_instructions):
        raise ValueError(
            f"clean_task_classes holds {len(clean_task_classes)} rows for "
            f"{len(clean_instructions)} clean records: run the clean pipeline again"
        )
    borderline = borderline_duplicates(
        clean_instructions, seed_tasks, clean, settings.sample.duplicate_margin
    )
    kept = pd.concat(
        [clean_instructions.reset_index(drop=True), borderline], axis=1
    ).assign(task_class=clean_task_classes["task_class"].to_numpy())
    sample = draw_sample(kept, clean_drops, clean, settings.sample, settings.seed)
    summary = {
        "seed": settings.seed,
        "classifier": task_classifier.summary(),
        "dropped_records_per_rule": clean_drops["rule"]
        .value_counts()
        .sort_index()
        .to_dict(),
        "sample_per_stratum": sample["stratum"].value_counts().sort_index().to_dict(),
        "sample_records": len(sample),
    }
    return sample, summary


def export_review_tasks(
    review_sample: pd.DataFrame, selection: dict[str, Any], params: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], str]:
    """Label Studio tasks (pre-annotated with the signals) and the labelling config."""
    settings = _settings(params)
    classes = tuple(selection["classifier"]["classes"])
    return (
        review_tasks(review_sample),
        label_config(settings.reject_reasons, classes),
    )


def pull_annotations(
    review_export: list[dict[str, Any]] | None, params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The reviewers' export: from Label Studio's API when ``label_studio.url`` is set,
    else the exported file (catalog ``review_export``)."""
    settings = _settings(params).label_studio
    if settings.url is not None:
        server = LabelStudio.of(settings, os.environ.get(settings.token_env))
        project = server.find_project(settings.project_title)
        if project is None:
            raise ExportError(
                f"Label Studio at {settings.url} has no project "
                f"{settings.project_title!r}: run `python -m belle_kedro review push`"
            )
        return server.export(project)
    if review_export is None:
        raise ExportError(
            "no annotations: export the Label Studio project as JSON to the catalog's "
            "review_export file, or set review.label_studio.url (docs/review.md)"
        )
    return review_export


def apply_review(
    clean_instructions: pd.DataFrame,
    review_sample: pd.DataFrame,
    review_annotations: list[dict[str, Any]],
    selection: dict[str, Any],
    params: Mapping[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, dict[str, float]]]:
    """``reviewed_instructions``, the review report and its figures as MLflow metrics."""
    settings = _settings(params)
    decisions = read_export(
        review_annotations, settings.reject_reasons, "review export"
    )
    resolved = resolve(decisions, set(review_sample["record_id"]))
    reviewed, decided = apply_decisions(
        clean_instructions,
        review_sample,
        resolved,
        settings.unreviewed,
        settings.restore_false_drops,
    )
    quality = filter_quality(decided)
    report = {
        "input_records": len(clean_instructions),
        "output_records": len(reviewed),
        "unreviewed": settings.unreviewed,
        "restore_false_drops": settings.restore_false_drops,
        "annotations": len(decisions),
        "reviewed_records": len(resolved.final),
        "decisions": decision_counts(decided),
        "conflicts": {
            record: [
                {"by": d.annotator, "decision": d.decision, "updated_at": d.updated_at}
                for d in group
            ]
            for record, group in resolved.conflicts.items()
        },
        "quality": quality,
        "selection": selection,
    }
    metrics = {
        **quality_metrics(quality),
        "output_records": len(reviewed),
        "conflicts": len(resolved.conflicts),
    }
    return reviewed, report, as_metrics(metrics)
