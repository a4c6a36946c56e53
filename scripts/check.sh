#!/usr/bin/env bash
# The development checks, in the order CI runs them: lint, format, types, docs.
# Uses the tools pinned in pyproject.toml's dev extras, from ./.venv (or the active env).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${VIRTUAL_ENV:-.venv}/bin"
"$bin/ruff" check src tests bench docs
"$bin/ruff" format --check src tests bench docs
"$bin/mypy"
# Warnings are errors: a broken cross-reference or docstring fails the build.
rm -rf docs/_build
"$bin/sphinx-build" -W --keep-going -q -b html docs docs/_build/html
echo "checks passed"
