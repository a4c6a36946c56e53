"""The ``openai`` backend: the official SDK's async client, chat or completion API.

Works with any OpenAI-compatible ``base_url`` (OpenAI, vLLM, DeepSeek, Ollama). The SDK's
own retries are switched off (``max_retries=0``) so the runner decides, counts and
logs every retry and honours ``Retry-After``; every request carries a timeout.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import openai

from belle_kedro.common.config import setting
from belle_kedro.llm.base import ApiKind, LLMError, LLMRequest, LLMResponse, RetryPolicy
from belle_kedro.llm.registry import register
from belle_kedro.llm.settings import BatchSettings, RetrySettings

# Sampling arguments the SDK's create() takes by name; anything else goes in extra_body.
_NAMED_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "n",
    }
)
# Worth another attempt besides 5xx (requests and the Batch API's files/batches calls).
RETRYABLE_STATUS = frozenset({408, 409, 429})


def retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth another attempt."""
    return status in RETRYABLE_STATUS or status >= 500


@dataclass(frozen=True)
class OpenAISettings(RetrySettings):
    """The ``openai`` sub-block: any OpenAI-compatible server (OpenAI, vLLM, Ollama)."""

    base_url: str | None = setting("an OpenAI-compatible server; null = api.openai.com")
    api_key_env: str = setting("env var read when credentials.yml has no api_key")
    timeout_s: float = setting("per request")
    batch: BatchSettings = setting("the Batch API, used when api: batch")


def _retry_after_s(headers: Any) -> float | None:
    """Seconds asked for by ``retry-after-ms`` or ``Retry-After`` (seconds or a date)."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return None if when is None else max(0.0, when.timestamp() - time.time())


def _choice_text(payload: Any, api: ApiKind) -> tuple[str, str | None]:
    """Text and finish_reason of the first choice; LLMError when the body is not one."""
    try:
        choice = payload["choices"][0]
        if api == "chat":
            text = choice["message"].get("content")
        else:
            text = choice["text"]
    except (KeyError, IndexError, TypeError, AttributeError):
        raise LLMError(
            "malformed response body: no choices[0] text", retryable=True
        ) from None
    if text is not None and not isinstance(text, str):
        raise LLMError("malformed response body: text is not a string", retryable=True)
    finish = choice.get("finish_reason")
    return text or "", finish if isinstance(finish, str) else None


def _usage(payload: dict[str, Any]) -> dict[str, int]:
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return {}
    return {
        k: int(v)
        for k, v in usage.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def response_from_body(
    content: bytes | Any, request_id: str, api: ApiKind, model: str, *, started: float
) -> LLMResponse:
    """The answer in a chat or completion response body (raw bytes or parsed JSON).

    Raises a retryable ``LLMError`` when the body is not one; the Batch backend reads
    its output lines through this too, so both paths parse answers the same way.
    """
    if isinstance(content, bytes | str):
        try:
            payload = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LLMError(
                f"malformed response body ({len(content)} bytes, not JSON)",
                retryable=True,
            ) from None
    else:
        payload = content
    if not isinstance(payload, dict):
        raise LLMError("malformed response body: not a JSON object", retryable=True)
    text, finish_reason = _choice_text(payload, api)
    return LLMResponse(
        request_id=request_id,
        text=text,
        finish_reason=finish_reason,
        model=str(payload.get("model") or model),
        usage=_usage(payload),
        started_at=started,
        finished_at=time.time(),
    )


class OpenAIBackend:
    """One attempt per ``complete`` call against an OpenAI-compatible server."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        api: ApiKind,
        base_url: str | None,
        timeout_s: float,
        retry_policy: RetryPolicy,
    ):
        if api not in ("chat", "completion"):
            raise ValueError(f"api must be 'chat' or 'completion', got {api!r}")
        self.model = model
        self.api: ApiKind = api
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.retry_policy = retry_policy
        self._api_key = api_key
        self._client: openai.AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def client_for_this_loop(self) -> openai.AsyncOpenAI:
        # Pooled connections belong to the loop that opened them; each asyncio.run
        # (one per collect_responses call) gets its own client.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.base_url,
                timeout=self.timeout_s,
                max_retries=0,
            )
            self._client_loop = loop
        return self._client

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIBackend(model={self.model!r}, api={self.api!r}, base_url={self.base_url!r})"

    def request_body(self, request: LLMRequest) -> dict[str, Any]:
        """The JSON body this request is sent with (also a Batch input line's ``body``)."""
        body: dict[str, Any] = {
            "model": self.model,
            **{k: v for k, v in request.params.items() if v is not None},
        }
        if self.api == "chat":
            body["messages"] = request.chat_messages()
        else:
            body["prompt"] = request.completion_prompt()
        return body

    def _arguments(self, request: LLMRequest) -> dict[str, Any]:
        body = self.request_body(request)
        extra = {
            k: body.pop(k)
            for k in list(request.params)
            if k in body and k not in _NAMED_PARAMS
        }
        arguments: dict[str, Any] = body
        if extra:
            arguments["extra_body"] = extra
        # OpenAI's tracing header; also lets a test server recognise a repeated request.
        arguments["extra_headers"] = {"X-Client-Request-Id": request.request_id}
        return arguments

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Send one request; raise ``LLMError`` (retryable or not) when it fails."""
        started = time.time()
        arguments = self._arguments(request)
        client = self.client_for_this_loop()
        endpoint = client.chat.completions if self.api == "chat" else client.completions
        try:
            raw = await endpoint.with_raw_response.create(**arguments)
            content = raw.content
        except openai.APITimeoutError:
            raise LLMError(
                f"timed out after {self.timeout_s}s", retryable=True
            ) from None
        except openai.APIConnectionError as error:
            raise LLMError(f"connection error: {error}", retryable=True) from None
        except openai.APIStatusError as error:
            status = error.status_code
            raise LLMError(
                f"HTTP {status}",
                retryable=retryable_status(status),
                retry_after_s=_retry_after_s(error.response.headers),
            ) from None
        return response_from_body(
            content, request.request_id, self.api, self.model, started=started
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.close()
        self._client = None


def resolve_api_key(
    settings: OpenAISettings, credentials: Mapping[str, Any], where: str
) -> str:
    """The key from credentials (``api_key``), else from the env var ``api_key_env`` names."""
    key = credentials.get("api_key") or os.environ.get(settings.api_key_env)
    if not key:
        raise ValueError(
            f"no API key for backend 'openai' ({where}): set the environment variable "
            f"{settings.api_key_env} or 'api_key' under the credentials section in "
            "conf/local/credentials.yml (servers without auth, such as Ollama, accept "
            "any non-empty string)"
        )
    return str(key)


def open_openai(
    settings: OpenAISettings,
    model: str | None,
    api: ApiKind,
    credentials: Mapping[str, Any],
    where: str,
) -> OpenAIBackend:
    """The backend for an ``openai`` sub-block; the key from credentials or the env."""
    if not model:
        raise ValueError(f"backend 'openai' needs a model ({where}.model)")
    return OpenAIBackend(
        model=model,
        api_key=resolve_api_key(settings, credentials, where),
        api=api,
        base_url=settings.base_url,
        timeout_s=settings.timeout_s,
        retry_policy=settings.retry_policy,
    )


register("openai", OpenAISettings, open_openai, batch=lambda settings: settings.batch)
