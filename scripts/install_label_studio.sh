#!/usr/bin/env bash
# Label Studio (the review server, docs/review.md) in its own virtualenv, because its
# pins (Django, numpy < 2.3 through label-studio-sdk) would change the project's own.
# Idempotent: does nothing when the venv already has it. Target: $BELLE_LABEL_STUDIO_VENV
# or ./.venv-label-studio, at the versions in scripts/label-studio-constraints.txt.
# Measured: 167 s and 1.0 GB on this 2-core box.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${BELLE_LABEL_STUDIO_VENV:-.venv-label-studio}"
if [ -x "$venv/bin/label-studio" ]; then
  echo "label-studio already in $venv"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -c scripts/label-studio-constraints.txt "label-studio==1.23.2"
echo "label-studio installed into $venv"
