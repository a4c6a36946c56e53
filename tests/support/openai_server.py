"""A real OpenAI-protocol HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks ``POST /v1/chat/completions`` and ``POST /v1/completions`` with scripted
replies, latencies and failures, and counts requests in flight at the server, so
concurrency claims are checked where they matter rather than inferred from timings.

    def responder(body: dict, endpoint: str) -> Reply:
        return Reply(text="得分: 1")

    with FakeOpenAIServer(responder, latency_s=0.05) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="k")
        ...
        assert server.max_in_flight_seen <= 16
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_PATH = "/v1/chat/completions"
COMPLETION_PATH = "/v1/completions"


@dataclass
class Reply:
    """What the server answers to one request.

    ``status`` other than 200 sends an OpenAI-style error body; ``raw_body`` sends
    those exact bytes instead of any JSON (for malformed responses); ``delay_s`` is
    added to the server's ``latency_s`` before answering (longer than the client's
    timeout makes a timeout); ``usage`` overrides the character-count token usage.
    """

    status: int = 200
    text: str = ""
    finish_reason: str = "stop"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: bytes | None = None
    usage: dict[str, int] | None = None


Responder = Callable[[dict[str, Any], str], Reply]


def prompt_text(body: dict[str, Any]) -> str:
    """The prompt of a chat or completion body as one string."""
    if "messages" in body:
        return "\n".join(str(m.get("content", "")) for m in body["messages"])
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False)


def default_responder(body: dict[str, Any], endpoint: str) -> Reply:
    """A deterministic answer derived from the prompt (same prompt, same text)."""
    digest = hashlib.sha256(prompt_text(body).encode("utf-8")).hexdigest()[:12]
    return Reply(text=f"reply {digest}")


class _BurstServer(ThreadingHTTPServer):
    # listen() runs in the constructor, so the backlog must be a class attribute: the
    # default of 5 refuses a burst of 64 connections opened at once.
    request_queue_size = 256
    daemon_threads = True


class FakeOpenAIServer:
    """Context manager running the server in a background thread."""

    def __init__(self, responder: Responder | None = None, latency_s: float = 0.0):
        self.responder: Responder = responder or default_responder
        self.latency_s = latency_s
        # Each received body plus "endpoint" (the path), "client_request_id" (the
        # X-Client-Request-Id header) and "received_at" (time.monotonic()).
        self.requests: list[dict[str, Any]] = []
        self.api_keys_seen: set[str] = set()
        self.in_flight = 0
        self.max_in_flight_seen = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        self._httpd = _BurstServer(("127.0.0.1", 0), _make_handler(self))
        port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- bookkeeping -----------------------------------------------------------------
    def _enter(self, body: dict[str, Any], endpoint: str, headers: Any) -> None:
        auth = headers.get("Authorization")
        with self._lock:
            # The client's own request id (X-Client-Request-Id) lets tests spot a repeat.
            client_id = headers.get("X-Client-Request-Id")
            self.requests.append(
                {
                    **body,
                    "endpoint": endpoint,
                    "client_request_id": client_id,
                    "received_at": time.monotonic(),
                }
            )
            if auth and auth.startswith("Bearer "):
                self.api_keys_seen.add(auth.removeprefix("Bearer "))
            self.in_flight += 1
            self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def requests_for(self, endpoint: str) -> list[dict[str, Any]]:
        """Received bodies for one endpoint path."""
        with self._lock:
            return [r for r in self.requests if r["endpoint"] == endpoint]


def _reply_body(body: dict[str, Any], endpoint: str, reply: Reply) -> bytes:
    prompt = prompt_text(body)
    usage = reply.usage or {
        "prompt_tokens": len(prompt),
        "completion_tokens": len(reply.text),
        "total_tokens": len(prompt) + len(reply.text),
    }
    if endpoint == CHAT_PATH:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": reply.text},
            "finish_reason": reply.finish_reason,
        }
        kind = "chat.completion"
    else:
        choice = {
            "index": 0,
            "text": reply.text,
            "finish_reason": reply.finish_reason,
            "logprobs": None,
        }
        kind = "text_completion"
    payload = {
        "id": "cmpl-" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16],
        "object": kind,
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [choice],
        "usage": usage,
    }
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _error_body(status: int) -> bytes:
    kind = "rate_limit_exceeded" if status == 429 else "server_error"
    return json.dumps(
        {"error": {"message": f"scripted {status}", "type": kind, "code": kind}}
    ).encode()


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as the SDK's connection pool expects.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle's algorithm the body waits
        # for the client's delayed ACK (~40 ms on loopback) and skews every latency.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            endpoint = self.path.split("?")[0]
            if endpoint not in (CHAT_PATH, COMPLETION_PATH):
                self._send(404, b'{"error": {"message": "not found"}}', {})
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(400, b'{"error": {"message": "bad json"}}', {})
                return
            server._enter(body, endpoint, self.headers)
            try:
                reply = server.responder(body, endpoint)
                delay = server.latency_s + reply.delay_s
                if delay > 0:
                    time.sleep(delay)
                if reply.raw_body is not None:
                    payload = reply.raw_body
                elif reply.status == 200:
                    payload = _reply_body(body, endpoint, reply)
                else:
                    payload = _error_body(reply.status)
            finally:
                # Out of flight before the answer leaves: once the client has it, it may
                # send its next request before this thread would get to run again.
                server._leave()
            try:
                self._send(reply.status, payload, reply.headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to answer

        def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

    return Handler
