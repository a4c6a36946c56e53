"""BELLE's judge prompts (``eval_prompt.json``): JSON Lines of ``{class, prompt}``.

Classes are matched to the eval set's through
:func:`~belle_kedro.datasets.eval_set.normalize_class` (case, U+00A0 and other spaces
folded), since BELLE's two files spell them differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from belle_kedro.common.errors import FormatError
from belle_kedro.datasets.eval_set import normalize_class
from belle_kedro.datasets.reading import ReadOnlyFileDataset, json_objects, text_field

# The judge must answer "得分: x"; a prompt that never asks for it cannot be parsed.
SCORE_MARKER = "得分"


class JudgePrompts(dict[str, str]):
    """Normalised class -> judge prompt, remembering the file it came from for errors."""

    def __init__(self, prompts: Mapping[str, str], source: str | Path):
        super().__init__(prompts)
        self.source = str(source)


class MissingClassPromptError(FormatError, KeyError):
    """An eval class has no judge prompt; catchable as FormatError or KeyError."""

    # KeyError's own __str__ would print the message as a quoted repr.
    __str__ = ValueError.__str__


def load_judge_prompts(path: str | Path) -> JudgePrompts:
    """Read judge prompts in BELLE's ``eval_prompt.json`` format, keyed by normalised class.

    Every prompt must ask for the ``得分: x`` reply; two lines for the same class
    (after normalisation) are an error rather than a silent override.
    """
    path = Path(path)
    prompts: dict[str, str] = {}
    first_seen: dict[str, int] = {}
    for line, record in json_objects(path):
        cls = normalize_class(
            text_field(record, "class", path, line, allow_blank=False)
        )
        prompt = text_field(record, "prompt", path, line, allow_blank=False)
        if cls in prompts:
            raise FormatError(
                path,
                line,
                "class",
                f"duplicate class '{cls}' (first on line {first_seen[cls]})",
            )
        if SCORE_MARKER not in prompt:
            raise FormatError(
                path,
                line,
                "prompt",
                f"does not ask for the '{SCORE_MARKER}: x' reply the judge parser needs",
            )
        prompts[cls] = prompt
        first_seen[cls] = line
    if not prompts:
        raise FormatError(path, None, None, "holds no prompts")
    return JudgePrompts(prompts, path)


def prompt_for_class(prompts: Mapping[str, str], cls: str) -> str:
    """The judge prompt for ``cls`` (any spelling BELLE uses), or a clear error."""
    key = normalize_class(cls)
    try:
        return prompts[key]
    except KeyError:
        source = getattr(prompts, "source", "judge prompts")
        known = ", ".join(sorted(prompts)) or "none"
        raise MissingClassPromptError(
            source,
            None,
            "class",
            f"no judge prompt for class '{key}'; known classes: {known}",
        ) from None


class JudgePromptsDataset(ReadOnlyFileDataset):
    """BELLE-format judge prompts -> dict of normalised class -> prompt.

    .. code-block:: yaml

       judge_prompts:
         type: belle_kedro.datasets.judge_prompts.JudgePromptsDataset
         filepath: data/01_raw/eval_prompt.json
    """

    def load(self) -> JudgePrompts:
        """Parse the file; a bad line raises ``FormatError`` naming file, line and field."""
        return load_judge_prompts(self._filepath)
