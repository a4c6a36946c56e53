"""How many decimals the report prints: enough that distinct values read differently.

A fixed two or three decimals print ``0.01 [0.01, 0.01]`` for every cell of a
0.010–0.027 scale. :func:`decimals_apart` picks, for one group of values shown side by
side (the means of a heat map, a table column), the fewest decimals at which every two
values that differ also print differently, never fewer than the usual ``least``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# Values closer than this (relative to the larger) are one value computed two ways.
_SAME = 1e-9
MOST_DECIMALS = 6


def decimals_apart(
    values: Iterable[float], *, least: int, most: int = MOST_DECIMALS
) -> int:
    """The fewest decimals in ``[least, most]`` that print distinct ``values`` distinctly.

    NaN and infinite values are ignored. Rounding is monotone, so it is enough that
    neighbours in sorted order print differently.
    """
    distinct: list[float] = []
    for value in sorted(value for value in values if math.isfinite(value)):
        if not distinct or value - distinct[-1] > _SAME * max(abs(value), 1.0):
            distinct.append(value)
    neighbours = list(zip(distinct, distinct[1:], strict=False))
    for decimals in range(least, most + 1):
        if all(
            f"{low:.{decimals}f}" != f"{high:.{decimals}f}" for low, high in neighbours
        ):
            return decimals
    return most


def fmt(value: float | None, decimals: int) -> str:
    """``value`` with ``decimals`` decimals; ``n/a`` for a missing or NaN value."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{decimals}f}"
