"""BELLE's SFT prompt template: the one source for train, inference and evaluation.

The exact strings (``\\n`` is a newline)::

    with an input:   "Human: {instruction}\\n{input}\\n\\nAssistant: "
    without input:   "Human: {instruction}\\n\\nAssistant: "

An empty (or whitespace-only) input drops its line entirely instead of leaving an empty
line, so a record without input looks exactly like a chat turn. The model's answer
follows the trailing space and ends with the tokenizer's EOS token.

:func:`encode_halves` (a batch) and :func:`encode_example` (one) tokenise a prompt and
its answer the one way training and scoring share: the two halves separately (rather than the joined text, then masking
``len(prompt_ids)`` tokens as stanford_alpaca does), which keeps the boundary exact:
BPE may merge the prompt's trailing space with the answer's first character, which
would shift the mask by one token. At inference the model sees the same prompt ids,
because answering tokenises ``build_prompt(...)`` alone too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HUMAN_PREFIX = "Human: "
ASSISTANT_PREFIX = "\n\nAssistant: "
# The same template as a tokenizer chat template (Jinja), saved with released
# tokenizers so ``apply_chat_template`` and TRL's ``messages`` training see exactly
# build_prompt's text; a system turn, if any, is a paragraph before "Human: ".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] | trim + '\\n\\n' }}"
    "{% elif message['role'] == 'user' %}"
    "{{ 'Human: ' + message['content'] | trim + '\\n\\nAssistant: ' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
)
# Label of a position the loss ignores (PyTorch's cross-entropy default).
IGNORE_INDEX = -100


def build_prompt(instruction: str, input_text: str = "") -> str:
    """The prompt the model sees before its answer."""
    body = instruction.strip()
    if input_text and input_text.strip():
        body = f"{body}\n{input_text.strip()}"
    return f"{HUMAN_PREFIX}{body}{ASSISTANT_PREFIX}"


def _encode_texts(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens added."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.truncation is None and backend.padding is None:
        # A fast tokenizer's own batch call, skipping the character offsets and
        # BatchEncoding that transformers would build around the same ids.
        return [
            encoding.ids
            for encoding in backend.encode_batch_fast(texts, add_special_tokens=False)
        ]
    ids: list[list[int]] = tokenizer(
        texts, add_special_tokens=False, return_attention_mask=False
    )["input_ids"]
    return ids


def encode_halves(
    tokenizer: Any,
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    end_with_eos: bool,
) -> tuple[list[list[int]], list[list[int]]]:
    """Prompt ids and answer ids of many examples, in one batched call per half.

    No special tokens are added; ``end_with_eos`` appends the EOS token to each answer
    (training teaches the model to stop; scoring a reference does not). A fast
    tokenizer encodes a batch on every core.
    """
    prompt_ids = _encode_texts(tokenizer, list(prompts))
    answer_ids = _encode_texts(tokenizer, list(answers))
    if end_with_eos:
        eos = tokenizer.eos_token_id
        answer_ids = [[*ids, eos] for ids in answer_ids]
    return prompt_ids, answer_ids


def encode_example(
    tokenizer: Any, prompt: str, answer: str, *, end_with_eos: bool
) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of prompt + answer, labels ``IGNORE_INDEX`` on the prompt."""
    (prompt_ids,), (answer_ids,) = encode_halves(
        tokenizer, [prompt], [answer], end_with_eos=end_with_eos
    )
    return [*prompt_ids, *answer_ids], [IGNORE_INDEX] * len(prompt_ids) + answer_ids
