"""Read every dataset_info.json entry of a released dataset folder with LLaMA-Factory.

Runs in LLaMA-Factory's own venv (scripts/install-llamafactory.sh), not the project's:
it imports only llamafactory. Writes, as JSON, each entry's records as LLaMA-Factory's
loader aligns them (``_system``, ``_prompt``, ``_response``), for the slow test
tests/pipelines/release/test_llamafactory.py to compare with what we released.

    python scripts/llamafactory_read.py <dataset folder> <cache dir> <output .json>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from llamafactory.data.loader import _get_merged_dataset
from llamafactory.hparams import DataArguments, ModelArguments, TrainingArguments


def main(folder: Path, cache: Path, output: Path) -> None:
    names = sorted(json.loads((folder / "dataset_info.json").read_text("utf-8")))
    # The loader reads only the data arguments; the model is never loaded.
    model_args = ModelArguments(model_name_or_path="unused", cache_dir=str(cache))
    data_args = DataArguments(dataset_dir=str(folder), dataset=names)
    training_args = TrainingArguments(output_dir=str(cache / "out"), report_to="none")
    loaded = _get_merged_dataset(
        names, model_args, data_args, training_args, stage="sft", return_dict=True
    )
    records = {
        name: [
            {
                "system": row["_system"],
                "prompt": row["_prompt"],
                "response": row["_response"],
            }
            for row in dataset
        ]
        for name, dataset in loaded.items()
    }
    # A file, not stdout: LLaMA-Factory logs there.
    output.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
