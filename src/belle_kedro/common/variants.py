"""The pipelines' shape from the run's parameters: the sample-size variants (named once,
in ``split.variant_sizes``) and whether the review stage sits between clean and split
(``review.enabled``).

Kedro builds pipelines lazily, after a session's context exists, so the variant
namespaces come from that session's configuration: ``--env`` and ``--params`` count.
:class:`~belle_kedro.hooks.variants.VariantsFromConfigHook` hands the session's
parameters over here before any pipeline is built. Without a session (``kedro
registry list``, a bare ``register_pipelines()``) the project found from the working
directory is read with ``KEDRO_ENV``, exactly as a session would read it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from belle_kedro.common.config import build
from belle_kedro.common.parameters import load_parameters
from belle_kedro.pipelines.split.settings import SplitSettings

# The last session's variant sizes and review switch (a mapping, so no module global
# is rebound).
_session: dict[str, Any] = {}


def sizes_from_parameters(parameters: Mapping[str, Any]) -> dict[str, int]:
    """``split.variant_sizes`` of a run's whole parameters, smallest variant first."""
    return build(SplitSettings, parameters["split"], "split").variants_by_size


def review_from_parameters(parameters: Mapping[str, Any]) -> bool:
    """``review.enabled`` of a run's whole parameters."""
    from belle_kedro.pipelines.review.settings import ReviewSettings

    return build(ReviewSettings, parameters["review"], "review").enabled


def use_session_parameters(parameters: Mapping[str, Any]) -> bool:
    """Take the variants and the review switch from a session's parameters; True when
    either changed."""
    shape = {
        "sizes": sizes_from_parameters(parameters),
        "review": review_from_parameters(parameters),
    }
    changed = any(shape[key] != _session.get(key) for key in shape)
    _session.update(shape)
    return changed


def _project_parameters() -> Mapping[str, Any]:
    from kedro.framework.project import settings
    from kedro.utils import find_kedro_project

    project = find_kedro_project(Path.cwd())
    if project is None:
        raise RuntimeError(
            "the variant names live in the project's parameters, but no Kedro project "
            f"contains {Path.cwd()}; run from the project or through a KedroSession"
        )
    return load_parameters(
        Path(project) / settings.CONF_SOURCE, os.environ.get("KEDRO_ENV")
    )


def variant_names() -> list[str]:
    """The variant namespaces, smallest first."""
    if "sizes" not in _session:
        return list(sizes_from_parameters(_project_parameters()))
    return list(_session["sizes"])


def review_enabled() -> bool:
    """Whether split reads ``reviewed_instructions`` (the review stage runs first)."""
    if "review" not in _session:
        return review_from_parameters(_project_parameters())
    return bool(_session["review"])
