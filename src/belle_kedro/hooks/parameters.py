"""Builds every stage's settings when a session starts, so a bad parameter stops the run.

Each top-level parameters block (``clean``, ``split``, …) belongs to one stage, whose
settings class accepts exactly the keys of ``conf/base/parameters_<stage>.yml``. Building
it from the session's parameters (every env, ``--params``) refuses a missing, unknown
or wrong-typed key, or a broken cross-field rule, naming the dotted key, before
anything is logged to MLflow.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from kedro.framework.hooks import hook_impl

from belle_kedro.common.config import ParameterError, build

# Each stage's top-level settings class, as "module:Class" (imported when first needed).
STAGE_SETTINGS = {
    "generate": "belle_kedro.pipelines.generate.settings:GenerateSettings",
    "clean": "belle_kedro.pipelines.clean.settings:CleanSettings",
    "review": "belle_kedro.pipelines.review.settings:ReviewSettings",
    "split": "belle_kedro.pipelines.split.settings:SplitSettings",
    "train": "belle_kedro.pipelines.train.settings:TrainSettings",
    "evaluate": "belle_kedro.pipelines.evaluate.settings:EvaluateSettings",
    # Not a stage: how runs prove they are alive (conf/base/parameters_tracking.yml).
    "tracking": "belle_kedro.hooks.liveness:TrackingSettings",
    "release": "belle_kedro.pipelines.release.settings:ReleaseSettings",
}


def settings_class(stage: str) -> type:
    """The top-level settings class of ``stage`` (a key of :data:`STAGE_SETTINGS`)."""
    module, name = STAGE_SETTINGS[stage].split(":")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def check_stages(params: Mapping[str, Any]) -> None:
    """Build every stage's settings from ``params``; a block of no stage is refused."""
    unknown = sorted(str(key) for key in set(params) - set(STAGE_SETTINGS))
    if unknown:
        raise ParameterError(
            f"unknown parameter block(s) {', '.join(unknown)}: every parameter belongs "
            f"to a stage ({', '.join(STAGE_SETTINGS)}) and is declared, with its "
            "default, in conf/base/parameters_<stage>.yml"
        )
    for stage in STAGE_SETTINGS:
        build(settings_class(stage), params.get(stage), stage)


class StrictParametersHook:
    """Checks the run's parameters (every env, ``--params``) before anything runs.

    ``conf/base/parameters_<stage>.yml`` is the one place a parameter and its default
    are declared; an environment or ``--params`` may change values but not add keys.
    """

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        check_stages(context.params)
