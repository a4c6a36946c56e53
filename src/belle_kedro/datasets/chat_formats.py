"""Instruction records as chat conversations (ShareGPT, OpenAI ``messages``) and back.

One record is one exchange: the user turn is the prompt body our template shows the
model (``instruction``, then ``input`` on its own line when there is one, as
:func:`belle_kedro.common.template.build_prompt` joins them) and the assistant turn is
``output``. Reading a conversation back gives ``instruction`` = the user turn and
``input`` = ``""``: the same prompt, hence the same training example.

* ShareGPT (LLaMA-Factory's ``sharegpt`` formatting): ``{"conversations": [{"from":
  "human", "value": …}, {"from": "gpt", "value": …}], "system": …}``;
* OpenAI / TRL ``messages``: ``{"messages": [{"role": "system", …}, {"role": "user",
  "content": …}, {"role": "assistant", "content": …}]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SHAREGPT = {
    "list": "conversations",
    "role": "from",
    "content": "value",
    "user": "human",
    "assistant": "gpt",
    "system": "system",
}
MESSAGES = {
    "list": "messages",
    "role": "role",
    "content": "content",
    "user": "user",
    "assistant": "assistant",
    "system": "system",
}


def user_turn(instruction: str, input_text: str) -> str:
    """The prompt body of a record: instruction, then its input on the next line."""
    body = instruction.strip()
    if input_text.strip():
        body = f"{body}\n{input_text.strip()}"
    return body


def as_sharegpt(
    instruction: str, input_text: str, output: str, system: str | None
) -> dict[str, Any]:
    """One record as a ShareGPT conversation (system prompt as its own key)."""
    record: dict[str, Any] = {
        "conversations": [
            {"from": "human", "value": user_turn(instruction, input_text)},
            {"from": "gpt", "value": output},
        ]
    }
    if system:
        record["system"] = system
    return record


def as_messages(
    instruction: str, input_text: str, output: str, system: str | None
) -> dict[str, Any]:
    """One record as OpenAI/TRL ``messages`` (a system turn first when given)."""
    turns = [{"role": "system", "content": system}] if system else []
    turns += [
        {"role": "user", "content": user_turn(instruction, input_text)},
        {"role": "assistant", "content": output},
    ]
    return {"messages": turns}


@dataclass(frozen=True)
class Exchange:
    """A conversation read back: its single exchange, or why it has none."""

    user: str | None
    assistant: str | None
    system: str | None
    skip_reason: str | None  # "multi_turn", …; None when user/assistant are set


class ChatShapeError(ValueError):
    """A conversation that is not shaped as its format says; ``field`` names where."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


def _text(turn: Mapping[str, Any], key: str, where: str) -> str:
    value = turn.get(key)
    if not isinstance(value, str):
        raise ChatShapeError(
            f"{where}.{key}",
            "is missing"
            if value is None
            else f"must be a string, got {type(value).__name__}",
        )
    return value


def read_exchange(record: Mapping[str, Any], shape: Mapping[str, str]) -> Exchange:
    """The single exchange of a ShareGPT or ``messages`` record (``shape``: its keys).

    A leading system turn (or ShareGPT's ``system`` key) is kept aside; one user turn
    then one assistant turn is an exchange; more turns are ``multi_turn``.
    """
    turns = record.get(shape["list"])
    if not isinstance(turns, list):
        raise ChatShapeError(shape["list"], "must be a list of turns")
    system = record.get("system") if isinstance(record.get("system"), str) else None
    roles = []
    for index, turn in enumerate(turns):
        where = f"{shape['list']}[{index}]"
        if not isinstance(turn, Mapping):
            raise ChatShapeError(where, f"must be an object, got {type(turn).__name__}")
        role = _text(turn, shape["role"], where)
        if role not in (shape["user"], shape["assistant"], shape["system"]):
            raise ChatShapeError(
                f"{where}.{shape['role']}", f"is an unknown role {role!r}"
            )
        roles.append((role, _text(turn, shape["content"], where)))
    if roles and roles[0][0] == shape["system"]:
        system = roles.pop(0)[1]
    if [role for role, _ in roles] != [shape["user"], shape["assistant"]]:
        reason = "multi_turn" if len(roles) > 2 else "not_one_exchange"
        return Exchange(None, None, system, reason)
    return Exchange(roles[0][1], roles[1][1], system, None)
