"""Kedro hooks, one concern each."""

from belle_kedro.hooks.liveness import RunLivenessHook
from belle_kedro.hooks.mlflow_runs import VariantChildRunHook
from belle_kedro.hooks.parameters import StrictParametersHook
from belle_kedro.hooks.run_command import RunCommandHook
from belle_kedro.hooks.secrets import SecretRedactionHook
from belle_kedro.hooks.variants import VariantsFromConfigHook

__all__ = [
    "RunLivenessHook",
    "RunCommandHook",
    "SecretRedactionHook",
    "StrictParametersHook",
    "VariantChildRunHook",
    "VariantsFromConfigHook",
]
