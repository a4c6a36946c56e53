"""review.enabled decides what split reads and whether __default__ runs the review."""

from __future__ import annotations

import pytest

from belle_kedro.common import variants
from belle_kedro.common.parameters import load_parameters
from belle_kedro.pipeline_registry import register_pipelines
from tests.support.project import REPO_ROOT


@pytest.mark.parametrize(
    ("enabled", "split_reads"),
    [(False, "clean_instructions"), (True, "reviewed_instructions")],
)
def test_review_switch_rewires_split_and_the_default_run(enabled, split_reads):
    parameters = load_parameters(REPO_ROOT / "conf", None)
    parameters["review"] = {**parameters["review"], "enabled": enabled}
    variants.use_session_parameters(parameters)
    pipelines = register_pipelines()
    [pool] = [n for n in pipelines["split"].nodes if n.name == "mix_into_pool"]
    assert pool.inputs[0] == split_reads
    default_nodes = {node.name for node in pipelines["__default__"].nodes}
    assert ("apply_review" in default_nodes) is enabled
    assert "apply_review" in {node.name for node in pipelines["review"].nodes}
    # The review stage's own input stays clean's output either way.
    assert "clean_instructions" in pipelines["review"].inputs()
    # The dataset card reads the review's figures only when the review runs.
    [card] = [n for n in pipelines["release"].nodes if n.name == "build_dataset_folder"]
    assert ("review_report" in card.inputs) is enabled
