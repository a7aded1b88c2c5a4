"""A real OpenAI-compatible chat-completions server on 127.0.0.1, scripted per test: each request takes the next
step of the script (an answer, an HTTP error, a hang, a dropped connection). No mock of the HTTP layer."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Step:
    status: int = 200
    body: Any = None  # a dict is sent as JSON
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the server stops)
    drop: bool = False  # close the connection without answering


def completion(content: str, *, model: str = "m-strategist", prompt_tokens: int = 120, completion_tokens: int = 30):
    return Step(
        body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def error(status: int, headers: dict[str, str] | None = None) -> Step:
    return Step(status=status, body={"error": {"message": f"scripted {status}", "type": "test"}}, headers=headers or {})


class ChatServer:
    """`responder(request_json) -> Step`, when given, answers every request the script does not."""

    def __init__(self, responder: Callable[[dict[str, Any]], Step] | None = None) -> None:
        self.responder = responder
        self.script: deque[Step] = deque()
        self.requests: list[dict[str, Any]] = []
        self._release = threading.Event()
        self._stopped = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "json": body}
                )
                if server.script:
                    step = server.script.popleft()
                elif server.responder is not None:
                    step = server.responder(body)
                else:
                    step = error(599)
                if step.hang:
                    server._release.wait(10)
                    self.close_connection = True
                    return
                if step.drop:
                    self.close_connection = True
                    return
                data = json.dumps(step.body).encode() if not isinstance(step.body, bytes) else step.body
                self.send_response(step.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in step.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def push(self, *steps: Step) -> None:
        self.script.extend(steps)

    def start(self) -> ChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
