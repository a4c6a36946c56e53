"""Shortfall reasons: what a short run says, and which reasons end it non-zero."""

from __future__ import annotations

import pytest

from belle_kedro.llm.base import IncompleteRun, LLMResponse, error_code, failure_reason
from belle_kedro.pipelines.generate.summary import check_complete


def test_failure_reason_counts_codes_and_tries():
    failed = [
        LLMResponse.failure(
            "a", "m", "batch item failed: batch_expired: 24h", attempts=4
        ),
        LLMResponse.failure(
            "b", "m", "batch item failed: batch_expired: 24h", attempts=4
        ),
        LLMResponse.failure("c", "m", "HTTP 500: server error", attempts=2),
    ]
    assert error_code(failed[2].error or "") == "HTTP 500"
    assert failure_reason(failed) == (
        "3 request(s) failed after 2-4 tries (batch_expired x2, HTTP 500 x1)"
    )
    assert (
        failure_reason(failed[:1])
        == "1 request(s) failed after 4 tries (batch_expired x1)"
    )


SHORT = {"target_reached": False, "instructions_parsed": 9, "instructions_target": 12}


def test_only_a_reason_nobody_chose_ends_the_run_non_zero():
    check_complete(
        {**SHORT, "shortfall": ["max_requests (5) reached"], "shortfall_chosen": True}
    )
    check_complete(
        {**SHORT, "target_reached": True, "shortfall": [], "shortfall_chosen": True}
    )
    reasons = [
        "2 request(s) failed after 4 tries (batch_expired x2)",
        "max_requests (5) reached",
    ]
    with pytest.raises(
        IncompleteRun,
        match=r"9 of 12 instructions: 2 request\(s\) failed.*nothing is paid twice",
    ):
        check_complete({**SHORT, "shortfall": reasons, "shortfall_chosen": False})
