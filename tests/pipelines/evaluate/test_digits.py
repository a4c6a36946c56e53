"""Decimals chosen so that different values print differently."""

from __future__ import annotations

import math

from belle_kedro.pipelines.evaluate.digits import decimals_apart, fmt


def test_a_narrow_scale_gets_the_decimals_that_tell_it_apart() -> None:
    # the heat map of the default run: every mean between 0.010 and 0.027
    means = [0.0101, 0.0134, 0.0189, 0.0271]
    assert decimals_apart(means, least=2) == 3
    assert len({fmt(mean, 3) for mean in means}) == 4
    assert decimals_apart([0.01231, 0.01234], least=2) == 5


def test_the_usual_decimals_stay_when_they_suffice() -> None:
    assert decimals_apart([0.1, 0.25, 0.9], least=3) == 3
    assert decimals_apart([], least=2) == 2
    # equal values, NaN and one value computed two ways need no extra digits
    assert decimals_apart([0.5, 0.5, math.nan, 0.1 + 0.2, 0.3], least=2) == 2


def test_decimals_are_capped() -> None:
    assert decimals_apart([0.1, 0.1 + 1e-8], least=2, most=4) == 4


def test_fmt_writes_missing_values_as_n_a() -> None:
    assert fmt(math.nan, 3) == "n/a" and fmt(None, 3) == "n/a"
    assert fmt(0.0125, 4) == "0.0125"
