"""The questions every variant answers: the eval set, or a seeded sample per class."""

from __future__ import annotations

import hashlib
import logging

import pandas as pd

from belle_kedro.pipelines.evaluate.settings import QuestionsSettings

logger = logging.getLogger(__name__)


def question_id(cls: str, question: str) -> str:
    """A hash of class and question: stable across runs and variants."""
    return hashlib.sha256(f"{cls}\x1f{question}".encode()).hexdigest()[:16]


def select_questions(
    eval_set: pd.DataFrame, selection: QuestionsSettings
) -> pd.DataFrame:
    """All questions, or a seeded sample of ``max_per_class``, each with its ``question_id``.

    A question repeated within its class is kept once.
    """
    questions = eval_set.copy()
    questions["question_id"] = [
        question_id(cls, question)
        for cls, question in zip(questions["class"], questions["question"], strict=True)
    ]
    duplicated = questions["question_id"].duplicated()
    if duplicated.any():
        logger.warning(
            "Dropping %d repeated questions from the eval set", int(duplicated.sum())
        )
        questions = questions[~duplicated]
    if selection.max_per_class is not None:
        shuffled = questions.sample(frac=1.0, random_state=selection.seed)
        questions = (
            shuffled.groupby("class", sort=False)
            .head(selection.max_per_class)
            .sort_index()
        )
    return questions.reset_index(drop=True)[
        ["question_id", "class", "question", "std_answer"]
    ]
