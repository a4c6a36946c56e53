"""What counts as a secret's name: of an environment variable, and of a parameter."""

from __future__ import annotations

import re

# Matches api_key / API_KEY / apikey, token, secret, password and credential(s).
SECRET_NAME = re.compile(r"api_?key|token|secret|password|credential", re.IGNORECASE)

# A parameter name that holds a secret: these words as a whole ``_``-separated part
# (``hf_token``, ``api_key``, ``db_password``), so ``max_tokens`` or ``tokenizer`` do not
# count. ``*_env`` parameters name an environment variable, which is not itself secret.
SECRET_PARAMETER = re.compile(
    r"(?:^|_)(?:api_?key|token|secret|password|passwd|credentials?)(?:_|$)",
    re.IGNORECASE,
)


def is_secret_parameter(key: str) -> bool:
    """Whether a parameter called ``key`` would hold a secret (see SECRET_PARAMETER)."""
    return bool(SECRET_PARAMETER.search(key)) and not key.endswith("_env")
