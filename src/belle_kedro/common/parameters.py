"""Reading the project's parameters exactly as a Kedro session reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_parameters(conf_source: str | Path, env: str | None) -> dict[str, Any]:
    """The parameters of ``env`` (None: the default run env) merged softly over base.

    Uses the project's config loader class and arguments (``settings.py``), so what this
    returns is what a session with ``--env=<env>`` sees before ``--params``. ``env``
    set to the base env gives base's parameters alone.
    """
    from kedro.framework.project import settings

    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf_source), env=env, **settings.CONFIG_LOADER_ARGS
    )
    return dict(loader["parameters"])
