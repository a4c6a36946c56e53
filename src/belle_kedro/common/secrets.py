"""What counts as a secret's name: one pattern for log masking and MLflow parameters."""

from __future__ import annotations

import re

# Matches api_key / API_KEY / apikey, token, secret, password and credential(s).
SECRET_NAME = re.compile(r"api_?key|token|secret|password|credential", re.IGNORECASE)
