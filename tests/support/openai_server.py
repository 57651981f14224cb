"""A fake OpenAI-compatible chat server: a real HTTP server on 127.0.0.1 in a background thread.

Endpoints:
- `POST /v1/chat/completions`: non-streaming JSON, or with `"stream": true` Server-Sent Events
  (`data: {chunk}` lines, a usage chunk when `stream_options.include_usage` is set, then
  `data: [DONE]`), shaped like OpenAI's responses.
- `GET /v1/models`: one model, `fake-model`.

Usage::

    from tests.support.openai_server import FakeOpenAIServer, Reply

    with FakeOpenAIServer() as server:               # default reply: "Hello from the fake server."
        server.reply("Plain text")                    # queue replies, consumed in order...
        server.reply({"answer": "x", "complete": True})  # a dict/list is sent as JSON text
        server.reply(Reply(status=500), Reply(delay=5))  # an HTTP 500, then a slow reply
        server.set_default(lambda body: Reply(content=body["messages"][-1]["content"]))
        model = ChatOpenAI(base_url=server.base_url, ...)
        ...
        body = server.last_request.body              # the JSON the client sent
        assert body["model"] == "my-model"

Queued replies are used first (one per request), then the default (a `Reply`, a string, or a
callable taking the request body and returning either). Every request is recorded in
`server.requests` (method, path, headers, parsed JSON body). All methods are thread-safe.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_ID = "fake-model"


@dataclass
class Reply:
    """One scripted response."""

    content: str | dict | list = "Hello from the fake server."
    status: int = 200
    delay: float = 0.0  # seconds before anything is sent (timeouts)
    chunk_delay: float = 0.0  # seconds between streamed chunks
    finish_reason: str = "stop"
    prompt_tokens: int | None = None  # default: words in the request's messages
    completion_tokens: int | None = None  # default: streamed pieces of the content
    error_message: str = "fake server error"
    drop_after: int | None = None  # streaming: cut the connection after this many chunks

    @property
    def text(self) -> str:
        return self.content if isinstance(self.content, str) else json.dumps(self.content)

    def pieces(self) -> list[str]:
        """The content split into word-sized deltas, as a server streams tokens."""
        return re.findall(r"\s*\S+\s*|\s+", self.text) or [""]


Responder = Reply | str | dict | list | Callable[[dict[str, Any]], "Reply | str | dict | list"]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


def _headers(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _as_reply(value: Any) -> Reply:
    return value if isinstance(value, Reply) else Reply(content=value)


class FakeOpenAIServer:
    def __init__(self, default: Responder | None = None) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._default: Responder = default if default is not None else Reply()
        self._stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="fake-openai", daemon=True
        )

    # --- lifecycle
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a delay
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting
    def reply(self, *replies: Reply | str | dict | list) -> FakeOpenAIServer:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._queue.extend(_as_reply(r) for r in replies)
        return self

    def set_default(self, responder: Responder) -> FakeOpenAIServer:
        with self._lock:
            self._default = responder
        return self

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # --- used by the handler
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            default = self._default
        return _as_reply(default(body) if callable(default) else default)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server stops; False when it stopped."""
        return not (seconds > 0 and self._stopping.wait(seconds))


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    server_version = "FakeOpenAI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.fake._record(RecordedRequest("GET", self.path, _headers(self.headers)))
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        self.fake._record(RecordedRequest("POST", self.path, _headers(self.headers), body))
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": "not found", "type": "not_found"}})
            return
        reply = self.fake._next_reply(body)
        try:
            if not self.fake._sleep(reply.delay):
                return
            if reply.status != 200:
                self._send_json(
                    reply.status,
                    {
                        "error": {
                            "message": reply.error_message,
                            "type": "server_error",
                            "code": reply.status,
                        }
                    },
                )
            elif body.get("stream"):
                self._stream(body, reply)
            else:
                self._send_json(200, self._completion(body, reply))
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
            pass

    @staticmethod
    def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion = reply.completion_tokens
        if completion is None:
            completion = len(reply.pieces())
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", MODEL_ID),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": self._usage(body, reply),
        }

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if reply.drop_after is not None:  # promise more than is sent: the client sees a cut
            self.send_header("Content-Length", "1000000")
        self.end_headers()
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", MODEL_ID),
        }

        def send(payload: Any) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                ],
            }

        for i, piece in enumerate(reply.pieces()):
            if reply.drop_after is not None and i >= reply.drop_after:
                self.close_connection = True
                return
            if i and not self.fake._sleep(reply.chunk_delay):
                return
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            send(choice(delta))
        send(choice({}, reply.finish_reason))
        if (body.get("stream_options") or {}).get("include_usage"):
            send({**base, "choices": [], "usage": self._usage(body, reply)})
        send("[DONE]")
