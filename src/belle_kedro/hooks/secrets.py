"""Keeps credential values out of every log record, and out of the parameters.

Values come from the Kedro credentials of the run environment, from
``conf/local/credentials.yml`` (read whatever the environment, like
``CredentialsDataset``), from environment variables whose names look like keys
(:data:`belle_kedro.common.secrets.SECRET_NAME`), and from every variable a parameter
``api_key_env`` names. The masking is installed in the log-record factory, so it covers
every logger and handler, including those configured after the hook runs.

Parameters are logged to MLflow, so a key passed as one (``--params
generate.llm.api_key=sk-...``) would be stored there. The hook refuses such a run when
the context is created, before any hook logs a parameter: a parameter whose name looks
like a secret (:func:`belle_kedro.common.secrets.is_secret_parameter`) and has a value, or whose value is one of the
secret values above.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from kedro.framework.hooks import hook_impl

from belle_kedro.common.config import ParameterError
from belle_kedro.common.secrets import SECRET_NAME, is_secret_parameter

MASK = "***"
# Parameters whose value names the environment variable holding a key.
KEY_ENV_PARAMETER = "api_key_env"
# Shorter values would mask ordinary words in logs ("true", "1").
MIN_SECRET_LENGTH = 6


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _leaves(params: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """``(dotted name, key, value)`` of every leaf of a nested parameter mapping."""
    if isinstance(params, Mapping):
        for key, value in params.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping):
                yield from _leaves(value, f"{name}.")
            else:
                yield name, str(key), value


def key_env_values(params: Mapping[str, Any]) -> set[str]:
    """Values of the environment variables that ``*api_key_env`` parameters name."""
    names = {
        str(value)
        for _, key, value in _leaves(params)
        if key.endswith(KEY_ENV_PARAMETER) and value
    }
    return {os.environ[name] for name in names if os.environ.get(name)}


def refuse_secret_parameters(params: Mapping[str, Any], secrets: set[str]) -> None:
    """A ParameterError naming every parameter that holds (or looks like) a secret.

    The message names the parameters, never their values.
    """
    offending = sorted(
        name
        for name, key, value in _leaves(params)
        if (is_secret_parameter(key) and value)
        or any(secret in text for text in _strings(value) for secret in secrets)
    )
    if offending:
        raise ParameterError(
            f"parameter(s) {offending} hold a secret; parameters are logged to MLflow, "
            "so keys belong in conf/local/credentials.yml or the environment variable "
            "the backend's api_key_env names"
        )


def secret_values(
    credentials: Any = None,
    project_path: Path | None = None,
    params: Mapping[str, Any] | None = None,
) -> set[str]:
    """Every value worth masking: credentials, the local credentials file, key env vars.

    Key env vars are those whose names look like keys, and those any ``api_key_env``
    parameter in ``params`` names.
    """
    values = set(_strings(credentials or {}))
    local_file = (project_path or Path.cwd()) / "conf" / "local" / "credentials.yml"
    if local_file.is_file():
        try:
            values |= set(
                _strings(yaml.safe_load(local_file.read_text(encoding="utf-8")))
            )
        except yaml.YAMLError:
            pass  # CredentialsDataset reports a broken file; masking is best effort
    values |= {v for k, v in os.environ.items() if SECRET_NAME.search(k)}
    values |= key_env_values(params or {})
    return {v for v in values if len(v) >= MIN_SECRET_LENGTH}


class _Redactor:
    """Wraps the log-record factory; the message is rendered and masked once."""

    def __init__(self, previous: Any):
        self.previous = previous
        self.secrets: set[str] = set()

    def mask(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        if not self.secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let logging report it as usual
            return record
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.mask(
                logging.Formatter().formatException(record.exc_info)
            )
        return record


def install_redaction(secrets: Iterable[str]) -> None:
    """Mask ``secrets`` in every log record from now on (idempotent; values accumulate)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _Redactor):
        factory = _Redactor(factory)
        logging.setLogRecordFactory(factory)
    factory.secrets |= {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}


class SecretRedactionHook:
    """Installs the log masking and refuses secret parameters once the context exists."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        try:
            credentials = context.config_loader["credentials"]
        except Exception:  # no credentials files in this environment
            credentials = {}
        params = context.params
        install_redaction(
            secret_values(credentials, Path(context.project_path), params)
        )
        # Keys, not every credential value (a base_url may be a parameter too).
        keys = key_env_values(params) | {
            str(value)
            for _, key, value in _leaves(credentials)
            if is_secret_parameter(key) and value
        }
        refuse_secret_parameters(
            params, {key for key in keys if len(key) >= MIN_SECRET_LENGTH}
        )
