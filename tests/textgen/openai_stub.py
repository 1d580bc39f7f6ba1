"""A real HTTP server on 127.0.0.1 that speaks the OpenAI Images API shape, scripted per test."""

from __future__ import annotations

import base64
import io
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image


def png_b64(value: int, size_px: int = 8) -> str:
    """A small grey PNG of constant `value`, base64-encoded."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((size_px, size_px), value, dtype=np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class Reply:
    """One scripted reply; `status=200` with no body answers with `n` generated images."""

    status: int = 200
    body: dict | None = None
    headers: dict = field(default_factory=dict)


class StubImagesServer:
    """Serve POST /v1/images/generations on a free loopback port; `replies` are used in order, then successes."""

    def __init__(self, replies: list[Reply] | None = None, *, api_key: str = "sk-test"):
        self.replies = list(replies or [])
        self.api_key = api_key
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with stub.lock:
                    stub.requests.append(
                        {"path": self.path, "body": body, "authorization": self.headers.get("Authorization")}
                    )
                    reply = stub.replies.pop(0) if stub.replies else Reply()
                if self.path != "/v1/images/generations":
                    reply = Reply(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                elif self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    reply = Reply(
                        401,
                        {
                            "error": {
                                "message": "Incorrect API key provided.",
                                "type": "invalid_request_error",
                                "code": "invalid_api_key",
                            }
                        },
                    )
                payload = reply.body
                if reply.status == 200 and payload is None:
                    start = len(stub.requests) * 10
                    payload = {
                        "created": 1,
                        "data": [
                            {"b64_json": png_b64(start + i), "revised_prompt": "rev"}
                            for i in range(int(body.get("n", 1)))
                        ],
                    }
                data = json.dumps(payload).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> StubImagesServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
