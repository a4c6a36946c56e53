"""Project settings: config patterns, resolvers and hooks."""

import os
import warnings

from omegaconf.resolvers import oc

from belle_kedro.hooks import SecretRedactionHook, VariantChildRunHook
from belle_kedro.variants import PROJECT_ROOT

# Telemetry off before any plugin can phone home (this machine has no network anyway).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

# "<variant>.train_data" names are how variants meet across pipelines (dataset factories);
# Kedro warns about dots in names outside a namespace, which is exactly our intent here.
warnings.filterwarnings("ignore", message="One or more dataset names contain")
# Kedro 1.7's own config loader still calls OmegaConf.register_new_resolver.
warnings.filterwarnings("ignore", message="register_new_resolver")

HOOKS = (SecretRedactionHook(), VariantChildRunHook())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # An environment overrides only the parameter keys it names (conf/openai, conf/belle).
    "merge_strategy": {"parameters": "soft"},
    # oc.env lets mlflow.yml and catalogs read e.g. MLFLOW_TRACKING_URI, so tests and
    # CI can point the whole project at a temporary store without editing conf.
    # project_root: the checkout the package is installed from (editable), so the default
    # MLflow store lands in the project root even when a notebook runs from notebooks/.
    "custom_resolvers": {"oc.env": oc.env, "project_root": lambda: str(PROJECT_ROOT)},
}
