"""Keeps credential values out of every log record.

Values come from the Kedro credentials of the run environment, from
``conf/local/credentials.yml`` (read whatever the environment, like
``CredentialsDataset``), and from environment variables whose names look like keys
(:data:`belle_kedro.common.secrets.SECRET_NAME`). The masking is installed
in the log-record factory, so it covers every logger and handler, including those
configured after the hook runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kedro.framework.hooks import hook_impl

from belle_kedro.common.secrets import SECRET_NAME

MASK = "***"
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


def secret_values(
    credentials: Any = None, project_path: Path | None = None
) -> set[str]:
    """Every value worth masking: credentials, the local credentials file, key env vars."""
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
    """Installs the log masking as soon as the Kedro context exists."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        try:
            credentials = context.config_loader["credentials"]
        except Exception:  # no credentials files in this environment
            credentials = {}
        install_redaction(secret_values(credentials, Path(context.project_path)))
