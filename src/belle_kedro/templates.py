"""BELLE's SFT prompt template: the one source for train, inference and evaluation.

The exact strings (``\\n`` is a newline)::

    with an input:   "Human: {instruction}\\n{input}\\n\\nAssistant: "
    without input:   "Human: {instruction}\\n\\nAssistant: "

An empty (or whitespace-only) input drops its line entirely instead of leaving an empty
line, so a record without input looks exactly like a chat turn. The model's answer
follows the trailing space and ends with the tokenizer's EOS token.
"""

from __future__ import annotations

HUMAN_PREFIX = "Human: "
ASSISTANT_PREFIX = "\n\nAssistant: "


def build_prompt(instruction: str, input_text: str = "") -> str:
    """The prompt the model sees before its answer."""
    body = instruction.strip()
    if input_text and input_text.strip():
        body = f"{body}\n{input_text.strip()}"
    return f"{HUMAN_PREFIX}{body}{ASSISTANT_PREFIX}"
