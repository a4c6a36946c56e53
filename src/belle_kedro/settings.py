"""Project settings: config patterns, resolvers and hooks."""

import os
import warnings
from pathlib import Path

from kedro.utils import find_kedro_project
from omegaconf.resolvers import oc

from belle_kedro.common.files import stage_local_writes
from belle_kedro.hooks import (
    RunCommandHook,
    RunLivenessHook,
    SecretRedactionHook,
    StrictParametersHook,
    VariantChildRunHook,
    VariantsFromConfigHook,
)

# Telemetry off before any plugin can phone home (this machine has no network anyway).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

# A full disk or a kill never leaves a torn JSON, pickle, CSV, text or plot file where
# the catalog reads: every local fsspec write is staged and renamed once whole.
stage_local_writes()

# "<variant>.train_data" names are how variants meet across pipelines (dataset factories);
# Kedro warns about dots in names outside a namespace, which is exactly our intent here.
warnings.filterwarnings("ignore", message="One or more dataset names contain")
# Kedro 1.7's own config loader still calls OmegaConf.register_new_resolver.
warnings.filterwarnings("ignore", message="register_new_resolver")

HOOKS = (
    StrictParametersHook(),
    VariantsFromConfigHook(),
    SecretRedactionHook(),
    VariantChildRunHook(),
    RunLivenessHook(),
    RunCommandHook(),
)


def _project_root() -> str:
    """The Kedro project holding the working directory (as ``kedro`` itself finds it)."""
    return str(find_kedro_project(Path.cwd()) or Path.cwd())


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides only the parameter keys it names (conf/openai, conf/belle).
    "merge_strategy": {"parameters": "soft"},
    # oc.env lets mlflow.yml and catalogs read e.g. MLFLOW_TRACKING_URI, so tests and
    # CI can point the whole project at a temporary store without editing conf.
    # project_root: the default MLflow store lands in the project root even when a
    # notebook runs from notebooks/, and for an installed (non-editable) package too.
    "custom_resolvers": {"oc.env": oc.env, "project_root": _project_root},
}
