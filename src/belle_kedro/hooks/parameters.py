"""Refuses parameters that ``conf/base`` does not declare (a misspelled key in any env)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kedro.framework.hooks import hook_impl

from belle_kedro.common.config import ParameterError

# Blocks whose keys are the user's to choose: variant names, and arguments passed
# through to another API (which names any key it does not know itself).
OPEN_BLOCKS = frozenset(
    {
        "split.variant_sizes",
        "generate.sampling",
        "evaluate.judge.request_params",
        "train.trainer",
    }
)


def undeclared_keys(
    values: Mapping[str, Any], declared: Mapping[str, Any], prefix: str = ""
) -> Iterator[str]:
    """Dotted keys of ``values`` that ``declared`` lacks, or whose shape differs.

    A block in :data:`OPEN_BLOCKS`, or one that ``declared`` leaves null or empty
    (``{}``), is free-form: any keys go.
    """
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in declared:
            yield name
            continue
        schema = declared[key]
        if isinstance(schema, Mapping) and schema and name not in OPEN_BLOCKS:
            if not isinstance(value, Mapping):
                yield f"{name} (must be a mapping)"
            else:
                yield from undeclared_keys(value, schema, f"{name}.")


class StrictParametersHook:
    """Checks the run's parameters (every env, ``--params``) against ``conf/base``.

    ``conf/base/parameters_<pipeline>.yml`` is the one place a parameter and its default
    are declared; an environment or ``--params`` may change values but not add keys.
    Runs before anything is logged to MLflow.
    """

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from kedro.framework.project import settings

        loader = context.config_loader
        # The run environment set to base itself: base's parameters alone.
        arguments = {**settings.CONFIG_LOADER_ARGS, "default_run_env": loader.base_env}
        base = type(loader)(
            conf_source=loader.conf_source, env=loader.base_env, **arguments
        )["parameters"]
        unknown = sorted(undeclared_keys(context.params, base))
        if unknown:
            raise ParameterError(
                f"undeclared parameter(s) in env '{context.env or loader.default_run_env}' "
                f"or --params: {', '.join(unknown)}. Every parameter is declared, with "
                "its default, in conf/base/parameters_<pipeline>.yml"
            )
