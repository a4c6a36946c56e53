"""A real OpenAI-protocol HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks ``POST /v1/chat/completions`` and ``POST /v1/completions`` with scripted
replies, latencies and failures, and counts requests in flight at the server, so
concurrency claims are checked where they matter rather than inferred from timings.

It also speaks the Batch API: ``/v1/files`` (multipart upload, retrieve, ``/content``)
and ``/v1/batches`` (create, list, retrieve, cancel). A batch advances one state every
``polls_per_state`` retrieves (validating, in_progress, finalizing, then completed);
its items are answered by the same responder, and ``batch_faults`` can make an item
fail, expire (the batch then ends ``expired``), come back as a malformed output
line or be answered twice (an output and an error line). ``batch_submissions`` and
``batch_paid`` count every request id submitted into a batch and every one answered in
a finished batch, so a test can assert none is paid twice.

Uploads and batches are refused (400) where the real API refuses them: an unknown
purpose, a batch input not named ``.jsonl``, a batch on a file not uploaded for
``batch``, an unknown endpoint, a window other than ``24h``, an input line whose
``method`` is not ``POST`` or whose ``url`` is not the batch's endpoint, a list
``limit`` outside 1-100.

    def responder(body: dict, endpoint: str) -> Reply:
        return Reply(text="得分: 1")

    with FakeOpenAIServer(responder, latency_s=0.05) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="k")
        ...
        assert server.max_in_flight_seen <= 16
"""

from __future__ import annotations

import hashlib
import itertools
import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

# Final keeps the literal types the openai SDK asks for (e.g. batches.create's endpoint).
CHAT_PATH: Final = "/v1/chat/completions"
COMPLETION_PATH: Final = "/v1/completions"


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
# (custom_id, how many times it was submitted into batches, this one included) ->
# None (answer it), "error" (a per-item failure), "expire", "malformed" or
# "duplicate" (answered in the output file, yet also given an error line).
BatchFaults = Callable[[str, int], str | None]
BATCH_STATES = ("validating", "in_progress", "finalizing")
# What the real API accepts (its reference): an upload's purpose, a batch's endpoint
# and window, and a list page's size; anything else is a 400.
FILE_PURPOSES = frozenset(
    {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}
)
BATCH_ENDPOINTS = frozenset(
    {CHAT_PATH, COMPLETION_PATH, "/v1/embeddings", "/v1/responses"}
)
MAX_LIST_LIMIT = 100


class Refused(ValueError):
    """A request the real API answers with 400 (invalid_request_error)."""


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

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the SIGKILL tests) resets its connections; that
        # is the point of those tests, not a server error worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeOpenAIServer:
    """Context manager running the server in a background thread."""

    def __init__(
        self,
        responder: Responder | None = None,
        latency_s: float = 0.0,
        *,
        batch_faults: BatchFaults | None = None,
        polls_per_state: int = 1,
    ):
        self.responder: Responder = responder or default_responder
        self.latency_s = latency_s
        self.batch_faults = batch_faults
        self.polls_per_state = polls_per_state
        # Files and batches API faults: "POST /v1/files", "POST /v1/batches" or
        # "GET /v1/batches" -> the statuses its next calls get (429, 500...), in order;
        # 0 drops the connection unanswered.
        self.api_faults: dict[str, list[int]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_submissions: Counter[str] = Counter()
        self.batch_paid: Counter[str] = Counter()
        self._ids = itertools.count(1)
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

    # -- the Batch API ---------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):06d}"

    def add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        """Store an uploaded file; its OpenAI file object."""
        if purpose not in FILE_PURPOSES:
            raise Refused(
                f"'{purpose}' is not one of {sorted(FILE_PURPOSES)} - 'purpose'"
            )
        if purpose == "batch" and not filename.endswith(".jsonl"):
            raise Refused("a batch input file must be a .jsonl file")
        with self._lock:
            return self._store_file(data, filename, purpose)

    def _store_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file_id = self._new_id("file")
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "data": data,
        }
        return self._file_object(file_id)

    def _file_object(self, file_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.files[file_id].items() if k != "data"}

    def create_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        """A batch on an uploaded input file; every custom_id in it is counted."""
        input_file_id = str(body.get("input_file_id"))
        if input_file_id not in self.files:
            raise KeyError(input_file_id)
        if self.files[input_file_id]["purpose"] != "batch":
            raise Refused(f"file {input_file_id} was not uploaded with purpose 'batch'")
        if body.get("endpoint") not in BATCH_ENDPOINTS:
            raise Refused(f"unsupported endpoint {body.get('endpoint')!r}")
        if body.get("completion_window") != "24h":
            raise Refused("completion_window must be '24h'")
        lines = [
            json.loads(line)
            for line in self.files[input_file_id]["data"].splitlines()
            if line.strip()
        ]
        for number, line in enumerate(lines, 1):
            if line.get("method") != "POST" or line.get("url") != body.get("endpoint"):
                raise Refused(
                    f"input line {number}: method must be 'POST' and url the batch's "
                    "endpoint"
                )
        with self._lock:
            batch_id = self._new_id("batch")
            for line in lines:
                self.batch_submissions[line["custom_id"]] += 1
            self.batches[batch_id] = {
                "id": batch_id,
                "object": "batch",
                "endpoint": body.get("endpoint"),
                "input_file_id": input_file_id,
                "completion_window": body.get("completion_window"),
                "status": "validating",
                "created_at": int(time.time()),
                "metadata": body.get("metadata"),
                "output_file_id": None,
                "error_file_id": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "_lines": lines,
                # Decided now, so the counts can show failures while the batch runs.
                "_faults": [
                    self.batch_faults(
                        x["custom_id"], self.batch_submissions[x["custom_id"]]
                    )
                    if self.batch_faults
                    else None
                    for x in lines
                ],
                "_polls": 0,
            }
            return self._batch_object(batch_id)

    def _batch_object(self, batch_id: str) -> dict[str, Any]:
        return {
            k: v for k, v in self.batches[batch_id].items() if not k.startswith("_")
        }

    def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        """The batch after one more poll: it moves on every ``polls_per_state`` polls."""
        with self._lock:
            batch = self.batches[batch_id]
            status = batch["status"]
            if status == "cancelling":
                batch["status"] = "cancelled"
            elif status in BATCH_STATES:
                batch["_polls"] += 1
                step = batch["_polls"] // self.polls_per_state
                if step < len(BATCH_STATES):
                    batch["status"] = BATCH_STATES[step]
                    # Items finish a third at a time; an erroring item counts as
                    # failed as it finishes, as the API's counts do.
                    failing = batch["_faults"].count("error")
                    done = batch["request_counts"]["total"] - failing
                    batch["request_counts"]["completed"] = done * step // 3
                    batch["request_counts"]["failed"] = failing * step // 3
                else:
                    self._finish(batch)
            return self._batch_object(batch_id)

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """Cancelling now, cancelled (with no output) on the next poll."""
        with self._lock:
            batch = self.batches[batch_id]
            if batch["status"] in BATCH_STATES:
                batch["status"] = "cancelling"
            return self._batch_object(batch_id)

    def _finish(self, batch: dict[str, Any]) -> None:
        """Answer every item (lock held): output and error files, final status."""
        output: list[bytes] = []
        errors: list[bytes] = []
        expired = False
        for line, fault in zip(batch["_lines"], batch["_faults"], strict=True):
            custom_id = line["custom_id"]
            item: dict[str, Any] = {
                "id": self._new_id("batch_req"),
                "custom_id": custom_id,
            }
            if fault == "expire":
                expired = True
                item |= {
                    "response": None,
                    "error": {"code": "batch_expired", "message": "not run in 24h"},
                }
                errors.append(json.dumps(item).encode())
                continue
            reply = self.responder(line["body"], line["url"])
            if fault == "error" or reply.status != 200:
                status = reply.status if reply.status != 200 else 500
                item |= {
                    "response": {
                        "status_code": status,
                        "body": json.loads(_error_body(status)),
                    },
                    "error": None,
                }
                errors.append(json.dumps(item).encode())
                continue
            body = json.loads(_reply_body(line["body"], line["url"], reply))
            item |= {
                "response": {
                    "status_code": 200,
                    "request_id": item["id"],
                    "body": body,
                },
                "error": None,
            }
            encoded = json.dumps(item, ensure_ascii=False).encode("utf-8")
            if fault == "malformed":  # answered and billed, but unreadable
                encoded = encoded[: len(encoded) // 2]
            if fault == "duplicate":  # answered, and an error line for it as well
                failed = item | {"response": None, "error": {"code": "server_error"}}
                errors.append(json.dumps(failed).encode())
            self.batch_paid[custom_id] += 1
            output.append(encoded)
        batch["status"] = "expired" if expired else "completed"
        batch["request_counts"] |= {"completed": len(output), "failed": len(errors)}
        for name, lines in (("output_file_id", output), ("error_file_id", errors)):
            if lines:
                stored = self._store_file(
                    b"\n".join(lines) + b"\n",
                    f"{batch['id']}_{name}.jsonl",
                    "batch_output",
                )
                batch[name] = stored["id"]

    def paid_twice(self) -> list[str]:
        """Request ids answered (so paid for) in more than one batch."""
        with self._lock:
            return sorted(k for k, n in self.batch_paid.items() if n > 1)


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

        def _api_fault(self, method: str) -> bool:
            """Answer with the next injected status for this files/batches call, if any."""
            kind = "/".join(self.path.split("?")[0].split("/")[:3])  # /v1/files...
            with server._lock:
                statuses = server.api_faults.get(f"{method} {kind}")
                status = statuses.pop(0) if statuses else None
            if status == 0:  # the connection drops before any answer
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif status is not None:
                self._send(status, _error_body(status), {})
            return status is not None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            endpoint = self.path.split("?")[0]
            if endpoint.startswith(("/v1/files", "/v1/batches")) and self._api_fault(
                "POST"
            ):
                return
            if endpoint == "/v1/files":
                self._upload(raw)
                return
            if endpoint.startswith("/v1/batches"):
                self._batches_post(endpoint, raw)
                return
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

        def do_GET(self) -> None:
            if self._api_fault("GET"):
                return
            parts = self.path.split("?")[0].strip("/").split("/")  # v1, kind, id, ...
            try:
                if parts[1:2] == ["batches"] and len(parts) == 2:
                    query = parse_qs(urlsplit(self.path).query)
                    limit = int(query.get("limit", ["20"])[0])
                    if not 1 <= limit <= MAX_LIST_LIMIT:
                        raise Refused(
                            f"limit must be 1 to {MAX_LIST_LIMIT}, not {limit}"
                        )
                    data = [server._batch_object(b) for b in list(server.batches)]
                    self._json(
                        {"object": "list", "data": data[::-1], "has_more": False}
                    )
                elif parts[1:2] == ["batches"] and len(parts) == 3:
                    self._json(server.retrieve_batch(parts[2]))
                elif parts[1:2] == ["files"] and len(parts) == 3:
                    self._json(server._file_object(parts[2]))
                elif parts[1:2] == ["files"] and parts[3:] == ["content"]:
                    data = server.files[parts[2]]["data"]
                    self._send(200, data, {"Content-Type": "application/octet-stream"})
                else:
                    self._send(404, b'{"error": {"message": "not found"}}', {})
            except KeyError:
                self._send(404, b'{"error": {"message": "no such object"}}', {})
            except Refused as refused:
                self._refuse(refused)

        def _upload(self, raw: bytes) -> None:
            content_type = self.headers.get("Content-Type", "")
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
            )
            fields: dict[str, Any] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                fields[str(name)] = (part.get_filename(), part.get_payload(decode=True))
            if "file" not in fields:
                self._send(400, b'{"error": {"message": "no file"}}', {})
                return
            filename, data = fields["file"]
            purpose = fields.get("purpose", (None, b""))[1].decode()
            try:
                self._json(server.add_file(data, filename or "upload", purpose))
            except Refused as refused:
                self._refuse(refused)

        def _batches_post(self, endpoint: str, raw: bytes) -> None:
            parts = endpoint.strip("/").split("/")
            try:
                if len(parts) == 2:
                    self._json(server.create_batch(json.loads(raw or b"{}")))
                elif len(parts) == 4 and parts[3] == "cancel":
                    self._json(server.cancel_batch(parts[2]))
                else:
                    self._send(404, b'{"error": {"message": "not found"}}', {})
            except KeyError:
                self._send(404, b'{"error": {"message": "no such object"}}', {})
            except Refused as refused:
                self._refuse(refused)

        def _refuse(self, refused: Refused) -> None:
            error = {"message": str(refused), "type": "invalid_request_error"}
            self._send(400, json.dumps({"error": error}).encode(), {})

        def _json(self, payload: dict[str, Any]) -> None:
            self._send(200, json.dumps(payload, ensure_ascii=False).encode("utf-8"), {})

        def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            if "Content-Type" not in headers:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()

    return Handler
