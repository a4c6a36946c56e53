#!/usr/bin/env bash
# Mutation testing (issue 23) of the modules in pyproject.toml's [tool.mutmut]
# (journal, batch, token cache, trainer checkpoints, dedup decisions) against their
# fast-lane tests. CPU-heavy: not run by CI. Results: `mutmut results`, a mutant's diff:
# `mutmut show <name>`. Usage: bash scripts/mutation.sh [max parallel children]
set -euo pipefail
cd "$(dirname "$0")/.."
export KEDRO_DISABLE_TELEMETRY=1 MLFLOW_DISABLE_TELEMETRY=true
# mutmut runs the tests inside mutants/, whose src/ holds the mutated package.
export PYTHONPATH=src
nice -n 10 "${PYTHON:-python}" -m mutmut run --max-children "${1:-2}"
"${PYTHON:-python}" -m mutmut results
