#!/usr/bin/env bash
# Mutation testing (issue 23): each chunk mutates one module (or only some of its
# functions) and runs that module's fast-lane tests against every mutant. CPU-heavy,
# run at low priority, one chunk at a time; not run by CI. docs/mutation.md lists what
# survived and why.
#
#   bash scripts/mutation.sh CHUNK [max parallel children]
#   CHUNK: journal | batch | token_cache | trainer | dedup
#   ONLY="x_input_line xǁ_BatchRunǁfollow_up" bash scripts/mutation.sh batch
#     mutates only those functions of the chunk's module (mutmut's mangled names:
#     x_<function>, xǁ<Class>ǁ<method>), e.g. what an earlier run left unreached.
#
# A chunk works in build/mutation/CHUNK/ (a copy of the tracked tree whose pyproject's
# [tool.mutmut] names the chunk's module and tests); reruns there only redo changed
# mutants. Results: `cd build/mutation/CHUNK && mutmut results`; a mutant's diff:
# `mutmut show NAME`.
set -euo pipefail
cd "$(dirname "$0")/.."
chunk="${1:?usage: scripts/mutation.sh journal|batch|token_cache|trainer|dedup [children]}"
children="${2:-2}"
pkg=src/belle_kedro
deselect=""
case "$chunk" in
journal) module=$pkg/llm/journal.py names=("belle_kedro.llm.journal.*")
    tests="tests/llm/test_journal.py tests/llm/test_disk_full.py" ;;
batch) module=$pkg/llm/batch.py names=("belle_kedro.llm.batch.*")
    tests="tests/llm/test_batch.py tests/llm/test_shortfall.py" ;;
token_cache) module=$pkg/pipelines/train/token_cache.py
    names=("belle_kedro.pipelines.train.token_cache.*")
    tests="tests/pipelines/train/test_token_cache.py"
    # The byte tokenizer's case takes the same code paths in 1 s; SmolLM2's takes 30 s.
    deselect="smollm2_tokenizer" ;;
trainer) # the checkpoint checks only
    module=$pkg/pipelines/train/trainer.py
    names=()
    for function in _safetensors_complete _file_complete _deepspeed_optimizer_shards \
        checkpoint_world_size check_world_size checkpoint_is_complete _checkpoint_step \
        resumable_checkpoint; do
        names+=("belle_kedro.pipelines.train.trainer.x_${function}__mutmut_*")
    done
    tests="tests/pipelines/train/test_checkpoint_checks.py tests/pipelines/train/test_trainer.py" ;;
dedup) # the decision stage only
    module=$pkg/pipelines/clean/dedup.py
    names=()
    for function in _undecided _decide _greedy _outcome find_reference_matches; do
        names+=("belle_kedro.pipelines.clean.dedup.x_${function}__mutmut_*")
    done
    tests="tests/pipelines/clean/test_dedup.py" ;;
*) echo "unknown chunk: $chunk" >&2; exit 2 ;;
esac
if [ -n "${ONLY:-}" ]; then
    dotted=${module#src/}
    dotted=${dotted%.py}
    dotted=${dotted//\//.}
    names=()
    for function in $ONLY; do
        names+=("$dotted.${function}__mutmut_*")
    done
fi

work=build/mutation/$chunk
mkdir -p "$work"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$work"
PYTHON="${PYTHON:-python}"
"$PYTHON" - "$work/pyproject.toml" "$deselect" "$module" $tests <<'EOF'
import json
import sys

path, deselect, module, *tests = sys.argv[1:]
lane = ["-m", "not slow", "-p", "no:cacheprovider", "-q"]
lane += ["-k", f"not {deselect}"] if deselect else []
text = open(path, encoding="utf-8").read()
start = text.index("[tool.mutmut]")
end = text.index("\n[", start + 1)
section = f"""[tool.mutmut]
source_paths = ["src/"]
only_mutate = [{json.dumps(module)}]
also_copy = ["conf/", "data/01_raw/", "tests/", "pyproject.toml"]
pytest_add_cli_args = {json.dumps(lane)}
pytest_add_cli_args_test_selection = {json.dumps(tests)}
"""
open(path, "w", encoding="utf-8").write(text[:start] + section + text[end:])
EOF
cd "$work"
export KEDRO_DISABLE_TELEMETRY=1 MLFLOW_DISABLE_TELEMETRY=true
# mutmut runs the tests inside mutants/, whose src/ holds the mutated package.
export PYTHONPATH=src
nice -n 10 "$PYTHON" -m mutmut run --max-children "$children" "${names[@]}"
"$PYTHON" -m mutmut results --all true
