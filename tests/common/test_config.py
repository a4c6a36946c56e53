"""The settings builder: every refusal names the dotted key the user writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from belle_kedro.common.config import (
    InvalidSetting,
    ParameterError,
    Settings,
    build,
    setting,
)


@dataclass(frozen=True)
class Inner(Settings):
    permutations: int = setting("hashes per key")
    rows_per_band: int = setting("rows in one band")

    def check(self) -> None:
        if self.permutations < self.rows_per_band:
            raise InvalidSetting("permutations", "must be ≥ rows_per_band")


@dataclass(frozen=True)
class Outer(Settings):
    api: Literal["chat", "completion"] = setting("the transport")
    limit: float | None = setting("a cap, or null")
    terms: tuple[str, ...] = setting("words to match")
    inner: Inner = setting("the nested block")


GOOD = {
    "api": "chat",
    "limit": 1,
    "terms": ["a"],
    "inner": {"permutations": 12, "rows_per_band": 6},
}


def test_a_good_block_is_typed_and_frozen() -> None:
    built = build(Outer, GOOD, "x.block")
    assert built == Outer("chat", 1.0, ("a",), Inner(12, 6))
    assert isinstance(built.limit, float)
    with pytest.raises(AttributeError):
        built.api = "completion"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"api": "batch"}, r"^x\.block\.api must be one of 'chat', 'completion'"),
        ({"limit": True}, r"^x\.block\.limit must be a number, got True"),
        ({"terms": ["a", 3]}, r"^x\.block\.terms\[1\] must be a string"),
        ({"inner": {"permutations": 2, "rows_per_band": 6}}, r"^x\.block\.inner\.permutations must be ≥ rows_per_band"),
        ({"inner": {"permutations": 2}}, r"missing parameter\(s\) x\.block\.inner\.rows_per_band .*rows in one band"),
        ({"extra": 1}, r"^unknown parameter\(s\) x\.block\.extra"),
    ],
)  # fmt: skip
def test_each_refusal_names_the_dotted_key(change: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        build(Outer, {**GOOD, **change}, "x.block")
