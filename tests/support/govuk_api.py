"""A fake GOV.UK Content + Search API: a real HTTP server on 127.0.0.1 serving a snapshot folder.

Endpoints (shaped like www.gov.uk):
- `GET /api/content/<base_path>` -> the page's content item JSON (`content/a__b.json`).
- `GET /api/search.json?count=&start=&fields=&filter_<field>=` -> `{"results", "total", "start"}`.
  `count` defaults to 10 (like GOV.UK), `fields` (comma-separated and/or repeated) selects
  result keys, `filter_<field>` (repeatable = OR) matches a result field: a string equal to the
  value, or a list containing it (list elements that are dicts match on slug/title/content_id).
  `filter_format=guide` is the common case.

Usage::

    from tests.support.govuk_api import FakeGovukApi

    with FakeGovukApi() as api:                # bundled snapshot; or FakeGovukApi(folder)
        api.fail("/pay-leave-for-parents", 429, times=2, retry_after=1)
        api.fail("/holiday-entitlement-rights", 503, times=1)
        api.delay("/vehicle-tax", 2.0, times=1)
        api.malformed_json("/some/page")
        api.redirect("/old-path", "/new-path")  # 303 -> /api/content/new-path
        api.edit_page("/new-path", title="Edited")  # or set_page / set_body / remove_page
        source = ContentApiSource(api.url, rate=200, ...)
        ...
        assert api.requests_for("/vehicle-tax")[0].headers["user-agent"].startswith("govchat")

As a pytest fixture (define in a conftest or test module)::

    @pytest.fixture
    def govuk_api():
        with FakeGovukApi() as api:
            yield api

Paths given to the fault/page methods are base paths (`/a/b`, meaning `/api/content/a/b`);
a path starting with `/api/` is taken as a raw request path, so
`api.fail("/api/search.json", 500)` makes the search endpoint fail.

Faults queue per path in the order added; each request consumes the first fault that still has
uses left (`times=None` = forever). A `delay` fault sleeps, then serves normally. All methods
are thread-safe and may be called while a crawl runs.
"""

from __future__ import annotations

import copy
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

BUNDLED_SNAPSHOT = Path(__file__).resolve().parents[2] / "ingest" / "snapshot"
SEARCH_PATH = "/api/search.json"
CONTENT_PREFIX = "/api/content"
BROKEN_HTML = (
    '<div class="govspeak"><h2 id="broken">Broken <b>markup<p>Unclosed paragraph'
    "<ul><li>first item<li>second <a href='/x'>link</ul></table></td><p>Stray close tags"
    "</span></div></div>&nbsp&amp;<script>alert(1)</script><h3>Dangling heading"
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str  # URL path, unquoted, without the query string (e.g. "/api/content/a/b")
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names, e.g. headers["user-agent"]
    timestamp: float  # time.monotonic() when the request arrived

    @property
    def base_path(self) -> str | None:
        """`/a/b` for a content request, else None."""
        if self.path.startswith(CONTENT_PREFIX + "/"):
            return self.path[len(CONTENT_PREFIX) :]
        return None

    @property
    def user_agent(self) -> str:
        return self.headers.get("user-agent", "")


@dataclass
class Fault:
    kind: str  # "status" | "delay" | "malformed" | "redirect"
    times: int | None  # uses left; None = forever
    status: int = 500
    retry_after: str | None = None
    body: bytes | None = None
    content_type: str = "application/json; charset=utf-8"
    seconds: float = 0.0
    to: str = ""
    hits: int = field(default=0)


@lru_cache(maxsize=4)
def _load_snapshot(folder: str) -> tuple[dict[str, bytes], dict[str, dict[str, Any]]]:
    """(base path -> raw file bytes, base path -> search.json entry); cached per process."""
    root = Path(folder)
    pages: dict[str, bytes] = {}
    for file in sorted((root / "content").glob("*.json")):
        pages["/" + file.name[: -len(".json")].replace("__", "/")] = file.read_bytes()
    entries: dict[str, dict[str, Any]] = {}
    search = root / "search.json"
    if search.is_file():
        for result in json.loads(search.read_text(encoding="utf-8")).get("results", []):
            entries[result["link"]] = result
    return pages, entries


def _content_key(path: str) -> str:
    """Normalise a base path or raw request path to the request path faults are keyed on."""
    if path.startswith("/api/"):
        return path
    if not path.startswith("/"):
        path = "/" + path
    return CONTENT_PREFIX + path


class FakeGovukApi:
    """A threaded HTTP server imitating the GOV.UK Content and Search APIs (see module doc)."""

    def __init__(self, snapshot: str | Path = BUNDLED_SNAPSHOT, *, host: str = "127.0.0.1"):
        self.snapshot = Path(snapshot).resolve()
        self._base_pages, self._base_entries = _load_snapshot(str(self.snapshot))
        self._host = host
        self._lock = threading.RLock()
        self._overrides: dict[str, bytes] = {}  # base path -> replacement body
        self._removed: dict[str, int] = {}  # base path -> status (404/410)
        self._faults: dict[str, list[Fault]] = {}
        self._extra_results: list[dict[str, Any]] = []
        self._log: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeGovukApi:
        if self._server is not None:
            return self
        server = _QuietServer((self._host, 0), _make_handler(self))
        self._server = server
        host, port = server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGovukApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ request log

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, in arrival order."""
        with self._lock:
            return list(self._log)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Requests for one base path (or raw `/api/...` path, e.g. `/api/search.json`)."""
        key = _content_key(path)
        return [r for r in self.requests if r.path == key]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # ------------------------------------------------------------ pages

    def paths(self) -> list[str]:
        """Base paths currently served (snapshot + added - removed), sorted."""
        with self._lock:
            every = set(self._base_pages) | set(self._overrides)
            return sorted(p for p in every if p not in self._removed)

    def page(self, base_path: str) -> dict[str, Any]:
        """A deep copy of the page's current JSON (KeyError if absent or not valid JSON)."""
        with self._lock:
            raw = self._overrides.get(base_path, self._base_pages.get(base_path))
        if raw is None:
            raise KeyError(base_path)
        return json.loads(raw)

    def set_page(self, base_path: str, item: dict[str, Any] | str | bytes) -> None:
        """Serve `item` at base_path (replaces the page, or adds a new one to search too).

        A dict is JSON-encoded (its `base_path` defaults to base_path); str/bytes are served
        verbatim, so this can also plant arbitrary bodies. Undoes a remove_page.
        """
        if isinstance(item, dict):
            item = copy.deepcopy(item)
            item.setdefault("base_path", base_path)
            body = json.dumps(item, ensure_ascii=False).encode("utf-8")
        else:
            body = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        with self._lock:
            self._overrides[base_path] = body
            self._removed.pop(base_path, None)

    def edit_page(
        self,
        base_path: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Edit a page: set top-level `fields` and/or call `mutate(item)` (in place or return a
        new dict). Returns the new item. E.g. `api.edit_page(p, title="New title")`."""
        item = self.page(base_path)
        item.update(fields)
        if mutate is not None:
            item = mutate(item) or item
        self.set_page(base_path, item)
        return item

    def set_body(self, base_path: str, html: str) -> dict[str, Any]:
        """Replace the page's body HTML (`details.body`, or the first guide part's body)."""

        def change(item: dict[str, Any]) -> None:
            details = item.setdefault("details", {})
            parts = details.get("parts")
            if isinstance(parts, list) and parts and "body" not in details:
                parts[0]["body"] = html
            else:
                details["body"] = html

        return self.edit_page(base_path, change)

    def broken_html(self, base_path: str, html: str = BROKEN_HTML) -> dict[str, Any]:
        """Keep the item valid JSON but make its body badly broken HTML; returns the item."""
        return self.set_body(base_path, html)

    def remove_page(self, base_path: str, status: int = 410) -> None:
        """Delete a page: dropped from search, content requests answer `status` (404/410)."""
        with self._lock:
            self._removed[base_path] = status

    def restore_page(self, base_path: str) -> None:
        """Undo set_page/edit_page/remove_page for a snapshot page."""
        with self._lock:
            self._overrides.pop(base_path, None)
            self._removed.pop(base_path, None)

    def add_search_result(self, result: dict[str, Any]) -> None:
        """Append a raw search result (e.g. `{"link": "https://example.com/x"}`) to listings."""
        with self._lock:
            self._extra_results.append(dict(result))

    # ------------------------------------------------------------ faults

    def _add_fault(self, path: str, fault: Fault) -> Fault:
        with self._lock:
            self._faults.setdefault(_content_key(path), []).append(fault)
        return fault

    def fail(
        self,
        path: str,
        status: int = 500,
        *,
        times: int | None = None,
        retry_after: float | str | None = None,
        body: bytes | str | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> Fault:
        """Answer `status` (429, 500, 503, 404, 410, 403, even 200 with `body`...) `times` times
        (None = forever), with a `Retry-After` header when retry_after is given (seconds or an
        HTTP-date string)."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body is None:
            body = json.dumps({"error": {"code": status, "message": f"fake {status}"}}).encode()
        return self._add_fault(
            path,
            Fault(
                "status",
                times,
                status=status,
                retry_after=None if retry_after is None else str(retry_after),
                body=body,
                content_type=content_type,
            ),
        )

    def delay(self, path: str, seconds: float, *, times: int | None = None) -> Fault:
        """Sleep `seconds` before answering (then serve normally) `times` times."""
        return self._add_fault(path, Fault("delay", times, seconds=seconds))

    def malformed_json(self, path: str, *, times: int | None = None) -> Fault:
        """Answer 200 application/json with a truncated, undecodable body."""
        return self._add_fault(path, Fault("malformed", times, status=200))

    def redirect(self, path: str, to: str, *, status: int = 303, times: int | None = None) -> Fault:
        """Answer `status` with `Location: <url>/api/content<to>` (GOV.UK's canonical redirect).
        `to` may also be a raw `/api/...` path or an absolute URL."""
        return self._add_fault(path, Fault("redirect", times, status=status, to=to))

    def clear_faults(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._faults.clear()
            else:
                self._faults.pop(_content_key(path), None)

    def reset(self) -> None:
        """Drop all faults, page edits/removals, extra search results and the request log."""
        with self._lock:
            self._faults.clear()
            self._overrides.clear()
            self._removed.clear()
            self._extra_results.clear()
            self._log.clear()

    # ------------------------------------------------------------ serving (handler thread)

    def _record(self, method: str, path: str, query: str, headers: Any) -> None:
        entry = RecordedRequest(
            method=method,
            path=path,
            query=parse_qs(query, keep_blank_values=True),
            headers={k.lower(): v for k, v in headers.items()},
            timestamp=time.monotonic(),
        )
        with self._lock:
            self._log.append(entry)

    def _take_fault(self, key: str) -> Fault | None:
        with self._lock:
            for fault in self._faults.get(key, []):
                if fault.times is None or fault.times > 0:
                    if fault.times is not None:
                        fault.times -= 1
                    fault.hits += 1
                    return fault
        return None

    def _search_entry(self, base_path: str) -> dict[str, Any]:
        entry = dict(self._base_entries.get(base_path, {"link": base_path}))
        raw = self._overrides.get(base_path)
        if raw is not None or not entry.get("format"):
            try:
                item = json.loads(raw if raw is not None else self._base_pages[base_path])
            except (ValueError, KeyError):
                item = None
            if isinstance(item, dict):
                for key, src in (("title", "title"), ("description", "description")):
                    if src in item:
                        entry[key] = item[src]
                if raw is not None and base_path not in self._base_entries:
                    entry["format"] = item.get("schema_name") or item.get("document_type")
                    entry["content_store_document_type"] = item.get("document_type")
                    entry["public_timestamp"] = item.get("public_updated_at")
        return entry

    def _search(self, query: dict[str, list[str]]) -> dict[str, Any]:
        def first_int(name: str, default: int) -> int:
            try:
                return max(0, int(query.get(name, [str(default)])[0]))
            except ValueError:
                return default

        count, start = first_int("count", 10), first_int("start", 0)
        fields = [f for value in query.get("fields", []) for f in value.split(",") if f]
        filters = {k[len("filter_") :]: v for k, v in query.items() if k.startswith("filter_")}
        with self._lock:
            results = [self._search_entry(p) for p in self.paths()]
            results += [dict(r) for r in self._extra_results]
        results = [r for r in results if all(_matches(r.get(k), vs) for k, vs in filters.items())]
        page = results[start : start + count]
        if fields:
            page = [{f: r[f] for f in fields if f in r} for r in page]
        return {"results": page, "total": len(results), "start": start}

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        self._record(handler.command, path, parts.query, handler.headers)
        fault = self._take_fault(path)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
            fault = None
        if fault is not None:
            if fault.kind == "status":
                headers = {"Content-Type": fault.content_type}
                if fault.retry_after is not None:
                    headers["Retry-After"] = fault.retry_after
                return _send(handler, fault.status, fault.body or b"", headers)
            if fault.kind == "malformed":
                return _send(
                    handler,
                    200,
                    b'{"base_path": "/broken", "title": "Trunc',
                    {"Content-Type": "application/json; charset=utf-8"},
                )
            if fault.kind == "redirect":
                to = fault.to
                if not to.startswith(("http://", "https://")):
                    to = self.url + _content_key(to)
                return _send(handler, fault.status, b"", {"Location": to})
        if path == SEARCH_PATH:
            body = json.dumps(self._search(parse_qs(parts.query)), ensure_ascii=False)
            return _send(handler, 200, body.encode("utf-8"), _JSON)
        if path.startswith(CONTENT_PREFIX + "/"):
            base_path = path[len(CONTENT_PREFIX) :]
            with self._lock:
                removed = self._removed.get(base_path)
                raw = self._overrides.get(base_path, self._base_pages.get(base_path))
            if removed is not None:
                return _send(handler, removed, _error(removed), _JSON)
            if raw is None:
                return _send(handler, 404, _error(404), _JSON)
            return _send(handler, 200, raw, _JSON)
        return _send(handler, 404, _error(404), _JSON)


_JSON = {"Content-Type": "application/json; charset=utf-8"}


def _error(status: int) -> bytes:
    return json.dumps({"error": {"code": status}}).encode()


def _matches(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, list):
        for element in value:
            if isinstance(element, dict):
                keys = ("slug", "title", "content_id", "link")
                if any(element.get(k) in wanted for k in keys):
                    return True
            elif str(element) in wanted:
                return True
        return False
    return value is not None and str(value) in wanted


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict) -> None:
    try:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
        pass  # the client gave up (e.g. its timeout fired during a delay fault)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up (timeouts in tests); report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


def _make_handler(api: FakeGovukApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeGovukApi/1.0"

        def do_GET(self) -> None:
            api._handle(self)

        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:  # silence stderr logging
            pass

    return Handler


__all__ = ["BROKEN_HTML", "BUNDLED_SNAPSHOT", "Fault", "FakeGovukApi", "RecordedRequest"]
