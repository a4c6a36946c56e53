"""Kedro hooks, one concern each."""

from belle_kedro.hooks.mlflow_runs import VariantChildRunHook
from belle_kedro.hooks.secrets import SecretRedactionHook

__all__ = ["SecretRedactionHook", "VariantChildRunHook"]
