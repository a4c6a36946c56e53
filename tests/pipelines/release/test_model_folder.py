"""Model folders: which variants are released, and clear errors when one cannot be."""

from __future__ import annotations

import pytest

from belle_kedro.common.config import ParameterError, build
from belle_kedro.pipelines.release.model_folder import (
    ReleaseError,
    load_registered,
    released_variants,
)
from belle_kedro.pipelines.release.settings import ReleaseSettings
from tests.support.project import base_parameters, merged

VERSIONS = {
    name: {"model_uri": f"models:/belle-sft/{i}"}
    for i, name in enumerate(["small", "large"], 1)
}
CHAMPION = {"variant": "small"}


def test_champion_all_or_named_variants() -> None:
    assert released_variants("champion", VERSIONS, CHAMPION) == ["small"]
    assert released_variants("all", VERSIONS, CHAMPION) == ["small", "large"]
    assert released_variants(["large"], VERSIONS, CHAMPION) == ["large"]


def test_a_variant_that_was_not_trained_is_refused() -> None:
    with pytest.raises(
        ReleaseError,
        match=r"names huge, which this run did not train \(trained: small, large\)",
    ):
        released_variants(["small", "huge"], VERSIONS, CHAMPION)


def test_an_unknown_variants_keyword_is_a_parameter_error() -> None:
    params = merged(base_parameters("release"), {"variants": "best"})
    with pytest.raises(ParameterError, match="release.variants"):
        build(ReleaseSettings, params, "release")


def test_a_missing_registry_version_names_the_variant(mlflow_store: str) -> None:
    import mlflow

    mlflow.set_tracking_uri(mlflow_store)
    with pytest.raises(
        ReleaseError,
        match=r"xlarge.model_version names models:/belle-sft/9, which the MLflow registry cannot give",
    ):
        load_registered("models:/belle-sft/9", "xlarge")
