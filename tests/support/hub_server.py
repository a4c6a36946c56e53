"""A loopback Hugging Face Hub on 127.0.0.1: the endpoints ``upload_folder`` calls.

``POST /api/repos/create``, ``POST /api/validate-yaml`` (the card's YAML header must
parse), ``POST /api/<type>s/<repo>/preupload/<rev>`` (every file
``regular``, so no LFS round trip) and ``POST /api/<type>s/<repo>/commit/<rev>`` (the
NDJSON commit: a header, then one base64 file per line). It keeps every committed
file's bytes per repo and every request's ``Authorization`` header, so a test can
compare what arrived with the folder and check the token was sent (and where).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PREUPLOAD = re.compile(r"^/api/(models|datasets)s?/(.+)/preupload/([^/]+)$")
_COMMIT = re.compile(r"^/api/(models|datasets)s?/(.+)/commit/([^/]+)$")


class FakeHubServer:
    """Run with ``with FakeHubServer() as hub:``; ``hub.endpoint`` is its URL."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, bytes]] = {}  # "<type>/<repo>" -> path -> bytes
        self.created: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.unknown: list[str] = []
        self.validated: list[str] = []  # README.md texts sent to /api/validate-yaml
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeHubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                hub.authorizations.append(self.headers.get("Authorization"))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                if path == "/api/repos/create":
                    body = json.loads(raw)
                    hub.created.append(body)
                    kind = body.get("type") or "model"
                    prefix = "" if kind == "model" else f"{kind}s/"
                    repo = f"{body['organization']}/{body['name']}"
                    self._send(200, {"url": f"{hub.endpoint}/{prefix}{repo}"})
                elif path == "/api/validate-yaml":
                    # The card's YAML header must at least parse, as the Hub checks it.
                    import yaml

                    content = json.loads(raw)["content"]
                    hub.validated.append(content)
                    header = (
                        content.split("---\n")[1] if content.startswith("---\n") else ""
                    )
                    errors = []
                    try:
                        yaml.safe_load(header)
                    except yaml.YAMLError as error:
                        errors.append({"message": str(error)})
                    self._send(
                        400 if errors else 200, {"errors": errors, "warnings": []}
                    )
                elif match := _PREUPLOAD.match(path):
                    files = json.loads(raw)["files"]
                    self._send(
                        200,
                        {
                            "files": [
                                {
                                    "path": f["path"],
                                    "uploadMode": "regular",
                                    "shouldIgnore": False,
                                }
                                for f in files
                            ]
                        },
                    )
                elif match := _COMMIT.match(path):
                    repo = f"{match.group(1)}/{match.group(2)}"
                    stored = hub.files.setdefault(repo, {})
                    for line in raw.decode().splitlines():
                        entry = json.loads(line)
                        if entry["key"] == "file":
                            value = entry["value"]
                            stored[value["path"]] = base64.b64decode(value["content"])
                    oid = hashlib.sha1(raw).hexdigest()
                    self._send(
                        200,
                        {
                            "commitUrl": f"{hub.endpoint}/{match.group(2)}/commit/{oid}",
                            "commitOid": oid,
                            "pullRequestUrl": None,
                        },
                    )
                else:
                    hub.unknown.append(f"POST {path}")
                    self._send(404, {"error": f"no route {path}"})

            def do_GET(self) -> None:
                hub.authorizations.append(self.headers.get("Authorization"))
                hub.unknown.append(f"GET {self.path}")
                self._send(404, {"error": f"no route {self.path}"})

        return Handler
