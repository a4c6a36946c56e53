"""Self-instruct generation: few-shot prompts from seed tasks, and parsing the answers.

Request ``i`` depends only on (random seed, i): it samples its k seed tasks with
``random.Random(f"{seed}:{i}")`` and its id hashes the exact prompt and parameters, so a
resumed run asks for exactly what the interrupted run would have asked for, and a
changed template or model gets new ids instead of stale answers.

Answers follow BELLE's format: tasks separated by ``###``, each with ``N. 指令:``,
``N. 输入:`` and ``N. 输出:`` (ASCII or full-width colon), ``<无输入>`` for no input.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from belle_kedro.llm.base import LLMRequest

NO_INPUT = "<无输入>"
# "<无输入>" with ASCII or full-width angle brackets, or bare.
_NO_INPUT_FORMS = frozenset({"<无输入>", "＜无输入＞", "无输入", "《无输入》"})
# A field label at a line start, as chat models write it: an optional list or quote
# marker, optional number (any, so restarted or missing numbering is fine), then
# 指令/输入/输出 followed by a colon (ASCII or full-width) or closed by bold or brackets:
# "4. 指令:", "**指令**：", "**2. 输入：**", "【输出】", "- [指令]: ".
_LABEL = re.compile(
    r"^[ \t]*(?:[-*>][ \t]+)?(?:\*\*)?[ \t]*(?:\d+[ \t]*[.．、)）]?[ \t]*)?"
    r"(?:\*\*|【|\[)?[ \t]*(指令|输入|输出)[ \t]*"
    r"(?:(?:\*\*|】|\])[ \t]*[:：]?|[:：][ \t]*(?:\*\*)?)",
    re.MULTILINE,
)
# A closing remark after the last task: a final paragraph that talks about the list.
_CLOSING_REMARK = re.compile(
    r"\n[ \t]*\n(?:[ \t]*-{3,}[ \t]*\n)?[ \t]*"
    r"(?:以上|希望(?:这些|以上|对)|如果您|如需|(?:这些|上述)(?:任务|指令)|祝您)"
    r"[^\n]*(?:\n.*)?$",
    re.DOTALL,
)
_FENCE = re.compile(r"\A\s*```[^\n]*\n(.*?)\n\s*```\s*\Z", re.DOTALL)
_FIELDS = {"指令": "instruction", "输入": "input", "输出": "output"}


@dataclass(frozen=True)
class FewShotExample:
    """One seed task as shown in the prompt."""

    seed_id: str
    instruction: str
    input: str
    output: str


def format_examples(examples: Sequence[FewShotExample]) -> str:
    """BELLE's few-shot block, ending with the open ``{k+1}. 指令:`` for the model."""
    parts = []
    for number, example in enumerate(examples, start=1):
        shown_input = example.input.strip() or NO_INPUT
        parts.append(
            f"###\n{number}. 指令: {example.instruction.strip()}\n"
            f"{number}. 输入:\n{shown_input}\n"
            f"{number}. 输出:\n{example.output.strip()}\n"
        )
    return "".join(parts) + f"###\n{len(examples) + 1}. 指令:"


def sample_examples(
    seed_tasks: pd.DataFrame, rng: random.Random, k: int
) -> list[FewShotExample]:
    """``k`` distinct seed tasks (one instance each), drawn with ``rng``."""
    if len(seed_tasks) < k:
        raise ValueError(
            f"few-shot needs at least {k} seed tasks, got {len(seed_tasks)}"
        )
    rows = rng.sample(range(len(seed_tasks)), k)
    examples = []
    for row in rows:
        task = seed_tasks.iloc[row]
        instances = list(task["instances"])
        instance = instances[rng.randrange(len(instances))] if instances else {}
        examples.append(
            FewShotExample(
                seed_id=str(task["id"]),
                instruction=str(task["instruction"]),
                input=str(instance.get("input") or ""),
                output=str(instance.get("output") or ""),
            )
        )
    return examples


def render_prompt(
    template: Mapping[str, str], num_tasks: int, examples: str
) -> tuple[str | None, str]:
    """(system, prompt) from a template with ``{num_tasks}`` and ``{examples}`` slots."""

    def fill(text: str | None) -> str | None:
        if text is None:
            return None
        # Plain replace, not str.format: seed text may contain braces.
        return text.replace("{num_tasks}", str(num_tasks)).replace(
            "{examples}", examples
        )

    prompt = fill(template["prompt"])
    return fill(template.get("system")), prompt or ""


def _derived_seed(random_seed: int, index: int) -> int:
    digest = hashlib.sha256(f"sampling:{random_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def build_request(
    seed_tasks: pd.DataFrame,
    index: int,
    *,
    random_seed: int,
    few_shot_k: int,
    num_tasks: int,
    template: Mapping[str, str],
    sampling: Mapping[str, Any],
    model: str,
    send_seed: bool = True,
) -> LLMRequest:
    """Request ``index`` of a run; the same arguments always give the same request."""
    rng = random.Random(f"{random_seed}:{index}")
    examples = sample_examples(seed_tasks, rng, few_shot_k)
    system, prompt = render_prompt(template, num_tasks, format_examples(examples))
    params = {k: v for k, v in sampling.items() if v is not None}
    if send_seed:
        params["seed"] = _derived_seed(random_seed, index)
    fingerprint = json.dumps(
        {"model": model, "system": system, "prompt": prompt, "params": params},
        ensure_ascii=False,
        sort_keys=True,
    )
    digest = hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:16]
    return LLMRequest(
        request_id=f"gen-{random_seed}-{index:07d}-{digest}",
        prompt=prompt,
        system=system,
        params=params,
        meta={
            "request_index": index,
            "seed_ids": [e.seed_id for e in examples],
            "random_seed": random_seed,
        },
    )


def _clean_field(value: str) -> str:
    return value.strip()


@dataclass(frozen=True)
class ParsedAnswer:
    """The tasks in one answer and the labelled blocks that gave no task."""

    tasks: list[dict[str, str]]
    unparsable: list[str]


def _parse_block(block: str, leading_is_instruction: bool) -> dict[str, str] | None:
    labels = list(_LABEL.finditer(block))
    fields: dict[str, str] = {}
    has_instruction_label = any(label.group(1) == "指令" for label in labels)
    if leading_is_instruction and not has_instruction_label:
        # The prompt ends with an open "N. 指令:", so the answer may start with the
        # instruction itself and no label.
        head = block[: labels[0].start()] if labels else block
        if head.strip():
            fields["instruction"] = _clean_field(head)
    for position, label in enumerate(labels):
        end = labels[position + 1].start() if position + 1 < len(labels) else len(block)
        name = _FIELDS[label.group(1)]
        fields.setdefault(name, _clean_field(block[label.end() : end]))
    if not fields.get("instruction") or "output" not in fields:
        return None
    task_input = fields.get("input", "")
    if task_input.strip() in _NO_INPUT_FORMS:
        task_input = ""
    return {
        "instruction": fields["instruction"],
        "input": task_input,
        "output": fields["output"],
    }


def _task_blocks(text: str) -> list[str]:
    """``###``-separated blocks, each also split where a new 指令 label starts."""
    blocks: list[str] = []
    for block in text.split("###"):
        starts = [m.start() for m in _LABEL.finditer(block) if m.group(1) == "指令"]
        cuts = [0, *(start for start in starts if start > 0), len(block)]
        blocks += [block[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if a < b]
    return blocks


def parse_answer(text: str | None, finish_reason: str | None) -> ParsedAnswer:
    """Tasks in one answer, in order, and the blocks that had labels but no task.

    Tolerates what chat models write around BELLE's layout: a code fence around the
    whole answer, a preamble, bold or bracketed labels, full-width colons, numbering
    that restarts or is missing, ``###`` missing between tasks and a closing remark.
    A block without an instruction or an output is skipped (and reported when it had
    a label). When the answer was cut off (``finish_reason == "length"``) its last
    block is dropped, as BELLE does, because it is probably incomplete. Never raises.
    """
    if not isinstance(text, str) or not text.strip():
        return ParsedAnswer([], [])
    fenced = _FENCE.match(text)
    blocks = _task_blocks(fenced.group(1) if fenced else text)
    if finish_reason == "length":
        blocks = blocks[:-1]
    tasks: list[dict[str, str]] = []
    unparsable: list[str] = []
    for number, block in enumerate(blocks):
        try:
            task = _parse_block(block, leading_is_instruction=number == 0)
        except Exception:  # a parser that never raises: a bad block is just skipped
            task = None
        if task is not None:
            tasks.append(task)
        elif _LABEL.search(block):
            unparsable.append(block.strip())
    if tasks and finish_reason != "length":
        last = tasks[-1]
        last["output"] = _CLOSING_REMARK.sub("", last["output"]).strip()
    return ParsedAnswer(tasks, unparsable)


def parse_tasks(text: str | None, finish_reason: str | None) -> list[dict[str, str]]:
    """The tasks of :func:`parse_answer`."""
    return parse_answer(text, finish_reason).tasks
