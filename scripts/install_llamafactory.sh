#!/usr/bin/env bash
# LLaMA-Factory in a virtualenv of its own, for the slow test that reads our
# dataset_info.json with its loader (tests/pipelines/release/test_llamafactory.py).
# Never in the project's venv: it caps transformers (<=4.52.4), datasets (<=3.6.0),
# numpy (<2), peft and trl far below the project's pins.
# Version 0.9.3, not 0.9.5: 0.9.4+ import torchaudio at load time, and no torchaudio
# wheel builds against the project's torch 2.13 (2.11.1's fails to load; letting pip pick
# pulls a CUDA torch 2.14, 6.9 GB). --no-deps, then only what the data loader imports:
# gradio, av, librosa, uvicorn serve its web UI, audio and API, not the loader.
# Idempotent. Target: $BELLE_LLAMAFACTORY_VENV or ./.venv-llamafactory, at the versions
# in scripts/llamafactory-constraints.txt. Measured: see docs/release.md.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BELLE_LLAMAFACTORY_VENV:-.venv-llamafactory}"
if "$venv/bin/python" -c "import llamafactory.data" 2>/dev/null; then
  echo "llamafactory already in $venv"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet -c scripts/constraints.txt "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet --no-deps "llamafactory==0.9.3"
"$venv/bin/python" -m pip install --quiet -c scripts/llamafactory-constraints.txt \
  transformers datasets accelerate peft trl tokenizers "numpy<2" pyarrow pydantic tyro \
  omegaconf pyyaml pandas safetensors sentencepiece tiktoken einops fire protobuf \
  packaging scipy matplotlib
echo "llamafactory installed into $venv"
