"""Where pages come from: a local snapshot folder or the live GOV.UK Content API.

Every source enumerates base paths (`list_paths`) and fetches one content item per path
(`fetch`), returning a `FetchResult` record (`Fetched`, `Gone` or `Failed`) and never raising
for a per-page problem, so one bad page never stops a crawl.

`ContentApiSource` is a polite HTTP crawler: one rate limiter shared by every request it makes
(search pages, content items, redirect hops), a descriptive User-Agent, a timeout on every
request, retries with exponential backoff on 429/5xx/transport errors honouring `Retry-After`,
and a hard ceiling of `MAX_CRAWL_RATE` requests/second to any non-loopback host.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import quote, urljoin, urlsplit

import httpx

from govchat.settings import MAX_CRAWL_RATE, Settings
from ingest.types import Failed, Fetched, FetchResult, Gone

log = logging.getLogger(__name__)

GOVUK_HOSTS = frozenset({"www.gov.uk", "gov.uk"})
SEARCH_PAGE_SIZE = 1000  # the GOV.UK Search API's maximum `count`
MAX_REDIRECTS = 10
BACKOFF_BASE = 1.0  # seconds; doubled on every retry, capped at max_backoff

_DEFAULTS = {name: Settings.model_fields[name].default for name in Settings.model_fields}
DEFAULT_CRAWL_RATE: float = _DEFAULTS["crawl_rate"]
DEFAULT_CRAWL_TIMEOUT: float = _DEFAULTS["crawl_timeout"]
DEFAULT_MAX_RETRIES: int = _DEFAULTS["crawl_max_retries"]
DEFAULT_MAX_BACKOFF: float = _DEFAULTS["crawl_max_backoff"]
DEFAULT_USER_AGENT: str = _DEFAULTS["crawl_user_agent"]

SearchFilters = Mapping[str, str | list[str]]


class SourceError(RuntimeError):
    """The source cannot enumerate its pages (e.g. the Search API kept failing)."""


@runtime_checkable
class PageSource(Protocol):
    description: str  # human-readable, e.g. "snapshot /path" or "https://www.gov.uk search ..."
    complete: bool  # list_paths() is the whole corpus: pages absent from it may be pruned

    def list_paths(self) -> list[str]:
        """Base paths, de-duplicated, in a stable order."""
        ...

    def fetch(self, base_path: str) -> FetchResult:
        """The content item at `base_path`; never raises for a per-page problem."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- paths


def path_to_filename(base_path: str) -> str:
    """`/a/b` -> `a__b.json` (the snapshot's file naming)."""
    return base_path.strip("/").replace("/", "__") + ".json"


def filename_to_path(filename: str) -> str:
    """`a__b.json` -> `/a/b`."""
    stem = filename[: -len(".json")] if filename.endswith(".json") else filename
    return "/" + stem.replace("__", "/")


def normalise_path(link: str, extra_hosts: Iterable[str] = ()) -> str | None:
    """A search-result link or user-supplied path/URL as a base path, or None if off-site.

    Relative links (`/a/b`, `a/b`) and absolute URLs on www.gov.uk, gov.uk or one of
    `extra_hosts` (host or host:port) become `/a/b`; query strings, fragments and trailing
    slashes are dropped. Other absolute URLs return None.
    """
    link = link.strip()
    if not link:
        return None
    parts = urlsplit(link)
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https", ""):
            return None
        host = (parts.hostname or "").lower()
        netloc = parts.netloc.lower()
        allowed = {h.lower() for h in extra_hosts}
        if host not in GOVUK_HOSTS and host not in allowed and netloc not in allowed:
            return None
    path = parts.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return path


def _dedupe(paths: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(paths))


def read_paths_file(paths_file: Path, extra_hosts: Iterable[str] = ()) -> list[str]:
    """Base paths from a text file: one per line, `#` comments and blank lines ignored.

    Full gov.uk URLs (`https://www.gov.uk/a/b`) are accepted; off-site URLs raise ValueError.
    """
    paths_file = Path(paths_file)
    try:
        text = paths_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read paths file {paths_file}: {exc}") from exc
    paths: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        path = normalise_path(line, extra_hosts)
        if path is None:
            raise ValueError(f"{paths_file}:{lineno}: not a GOV.UK path or URL: {line!r}")
        paths.append(path)
    return _dedupe(paths)


def is_loopback_host(host: str | None) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- snapshot


class SnapshotSource:
    """Content items stored as `content/a__b.json` files (see ingest/snapshot/README.md)."""

    def __init__(self, folder: str | Path, *, paths: list[str] | None = None) -> None:
        self.folder = Path(folder).expanduser()
        self.content_dir = self.folder / "content"
        if not self.content_dir.is_dir():
            raise ValueError(
                f"not a snapshot folder (expected a content/ subfolder): {self.folder}"
            )
        self._paths = None if paths is None else _dedupe(p for p in map(normalise_path, paths) if p)
        self.complete = paths is None
        self.description = f"snapshot {self.folder}" + (
            "" if paths is None else f" ({len(self._paths or [])} listed paths)"
        )

    def list_paths(self) -> list[str]:
        if self._paths is not None:
            return list(self._paths)
        return sorted(filename_to_path(f.name) for f in self.content_dir.glob("*.json"))

    def fetch(self, base_path: str) -> FetchResult:
        file = self.content_dir / path_to_filename(base_path)
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return Gone(base_path, 404)
        except OSError as exc:
            return Failed(base_path, f"cannot read {file}: {exc}")
        try:
            item = json.loads(raw)
        except ValueError as exc:
            return Failed(base_path, f"invalid JSON in {file}: {exc}")
        if not isinstance(item, dict):
            return Failed(base_path, f"{file} holds a JSON {type(item).__name__}, not an object")
        return Fetched(base_path, item)

    def close(self) -> None:
        pass

    def __enter__(self) -> SnapshotSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- rate limiting


class RateLimiter:
    """Spaces calls at least 1/rate seconds apart (thread-safe; sleeps outside the lock)."""

    def __init__(
        self,
        rate: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"crawl rate must be > 0 requests/second, got {rate}")
        self.rate = rate
        self.interval = 1.0 / rate
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._next: float | None = None

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            slot = now if self._next is None else max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# ---------------------------------------------------------------- Content API


class _GiveUp(Exception):
    """A request failed for good (retries exhausted, bad redirect, ...)."""


class ContentApiSource:
    """Pages from a GOV.UK-shaped Content API (`{base}/api/content/<path>`).

    Paths come from `paths` when given, otherwise from the Search API
    (`{base}/api/search.json`), optionally narrowed by `search_filters` such as
    `{"format": "guide"}` or `{"organisations": ["hm-revenue-customs", "..."]}` (sent as
    `filter_format=guide`; keys already starting with `filter_`/`reject_` are sent as is).
    """

    def __init__(
        self,
        base_url: str,
        *,
        paths: list[str] | None = None,
        search_filters: SearchFilters | None = None,
        rate: float = DEFAULT_CRAWL_RATE,
        timeout: float = DEFAULT_CRAWL_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        user_agent: str = DEFAULT_USER_AGENT,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        search_page_size: int = SEARCH_PAGE_SIZE,
    ) -> None:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Content API base URL must be an http(s) URL: {base_url!r}")
        base_path = parts.path.rstrip("/")
        for suffix in ("/api/content", "/api"):  # be forgiving about ".../api/content"
            if base_path.endswith(suffix):
                base_path = base_path[: -len(suffix)]
                break
        self.base_url = f"{parts.scheme}://{parts.netloc}{base_path}"
        self.host = parts.hostname.lower()
        self._netloc = parts.netloc.lower()
        self.loopback = is_loopback_host(self.host)
        if not rate > 0:
            raise ValueError(f"crawl rate must be > 0 requests/second, got {rate}")
        if rate > MAX_CRAWL_RATE and not self.loopback:
            raise ValueError(
                f"crawl rate {rate}/s exceeds the maximum of {MAX_CRAWL_RATE}/s for remote "
                f"host {self.host} (only loopback test servers may be crawled faster)"
            )
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if search_page_size < 1:
            raise ValueError(f"search_page_size must be >= 1, got {search_page_size}")
        self.rate = rate
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_backoff = max_backoff
        self.user_agent = user_agent
        self.search_page_size = search_page_size
        self._sleep = sleep
        self._clock = clock
        self.limiter = RateLimiter(rate, sleep=sleep, clock=clock)
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._owns_client = client is None
        self._client = client or httpx.Client(
            timeout=timeout, headers=self._headers, follow_redirects=False
        )
        self.search_params = _filter_params(search_filters or {})
        self._paths: list[str] | None = None
        if paths is not None:
            normalised: list[str] = []
            for p in paths:
                n = normalise_path(p, (self.host, self._netloc))
                if n is None:
                    raise ValueError(f"not a GOV.UK path or URL: {p!r}")
                normalised.append(n)
            self._paths = _dedupe(normalised)
            self.complete = False
            self.description = f"{self.base_url} ({len(self._paths)} listed paths)"
        else:
            self.complete = not self.search_params
            shown = " ".join(f"{k}={v}" for k, v in self.search_params) or "(all pages)"
            self.description = f"{self.base_url} search {shown}"

    # ------------------------------------------------------------ enumeration

    def list_paths(self) -> list[str]:
        """The listed paths, or every link the Search API returns (paged; cached)."""
        if self._paths is None:
            self._paths = self._search_paths()
        return list(self._paths)

    def _search_paths(self) -> list[str]:
        url = f"{self.base_url}/api/search.json"
        paths: list[str] = []
        start = 0
        skipped = 0
        while True:
            params = [
                ("count", str(self.search_page_size)),
                ("start", str(start)),
                ("fields", "link"),
                *self.search_params,
            ]
            try:
                response = self._request(url, params)
            except _GiveUp as exc:
                raise SourceError(f"search failed at start={start}: {exc}") from exc
            if response.status_code != 200:
                raise SourceError(
                    f"search failed at start={start}: HTTP {response.status_code} from {url}"
                )
            try:
                data = response.json()
            except ValueError as exc:
                raise SourceError(f"search returned invalid JSON at start={start}: {exc}") from exc
            results = data.get("results") if isinstance(data, dict) else None
            if not isinstance(results, list):
                raise SourceError(f"search response at start={start} has no 'results' list")
            if not results:
                break
            for result in results:
                link = result.get("link") if isinstance(result, dict) else None
                path = normalise_path(link, (self.host, self._netloc)) if link else None
                if path is None:
                    skipped += 1
                    log.debug("ignoring off-site or empty search link %r", link)
                    continue
                paths.append(path)
            start += len(results)
            total = data.get("total")
            if isinstance(total, int) and start >= total:
                break
        if skipped:
            log.info("ignored %d off-site/empty search result links", skipped)
        paths = _dedupe(paths)
        log.info("search listed %d paths from %s", len(paths), self.description)
        return paths

    # ------------------------------------------------------------ fetching

    def fetch(self, base_path: str) -> FetchResult:
        """GET {base}/api/content{base_path}; `Fetched.base_path` is the requested path."""
        if not base_path.startswith("/"):
            base_path = "/" + base_path
        url = f"{self.base_url}/api/content{quote(base_path, safe='/%:@!$&()*+,;=-._~')}"
        try:
            response = self._request(url)
        except _GiveUp as exc:
            log.warning("giving up on %s: %s", base_path, exc)
            return Failed(base_path, str(exc))
        status = response.status_code
        if status in (404, 410):
            log.info("%s is gone (HTTP %d)", base_path, status)
            return Gone(base_path, status)
        if not 200 <= status < 300:
            error = f"HTTP {status} from {response.request.url}"
            log.warning("failed to fetch %s: %s", base_path, error)
            return Failed(base_path, error)
        try:
            item = response.json()
        except ValueError as exc:
            ctype = response.headers.get("content-type", "?")
            error = f"response is not valid JSON (content-type {ctype}): {exc}"
            log.warning("failed to fetch %s: %s", base_path, error)
            return Failed(base_path, error)
        if not isinstance(item, dict):
            error = f"response is a JSON {type(item).__name__}, not an object"
            log.warning("failed to fetch %s: %s", base_path, error)
            return Failed(base_path, error)
        return Fetched(base_path, item)

    # ------------------------------------------------------------ HTTP

    def _send(self, url: str, params: list[tuple[str, str]] | None) -> httpx.Response:
        """One attempt: rate-limited GETs, following redirects hop by hop on the same host."""
        for _ in range(MAX_REDIRECTS + 1):
            self.limiter.acquire()
            response = self._client.get(
                url,
                params=params,
                headers=self._headers,
                timeout=self.timeout,
                follow_redirects=False,
            )
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = response.headers.get("location")
            if not location:
                raise _GiveUp(f"HTTP {response.status_code} redirect without Location from {url}")
            target = urljoin(str(response.request.url), location)
            target_parts = urlsplit(target)
            if target_parts.netloc.lower() != self._netloc:
                raise _GiveUp(f"refusing off-site redirect from {url} to {target}")
            log.debug("following HTTP %d redirect %s -> %s", response.status_code, url, target)
            url, params = target, None
        raise _GiveUp(f"more than {MAX_REDIRECTS} redirects from {url}")

    def _request(self, url: str, params: list[tuple[str, str]] | None = None) -> httpx.Response:
        """GET with retries on 429/5xx/transport errors; returns the final response."""
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self._send(url, params)
            except httpx.TransportError as exc:  # includes timeouts
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except httpx.HTTPError as exc:
                raise _GiveUp(f"{type(exc).__name__}: {exc}") from exc
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    return response
                error = f"HTTP {status}"
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt >= self.max_retries:
                raise _GiveUp(f"{error} from {url} (after {attempt + 1} attempts)")
            delay = self._backoff(attempt, retry_after)
            attempt += 1
            log.warning(
                "%s from %s; retry %d/%d in %.1fs",
                error,
                url,
                attempt,
                self.max_retries,
                delay,
            )
            self._sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        return min(BACKOFF_BASE * 2**attempt, self.max_backoff)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> ContentApiSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _filter_params(filters: SearchFilters) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    for name, value in filters.items():
        key = name if name.startswith(("filter_", "reject_")) else f"filter_{name}"
        values = [value] if isinstance(value, str) else list(value)
        params.extend((key, str(v)) for v in values)
    return params


# ---------------------------------------------------------------- construction


def source_from_settings(
    source: str,
    settings: Settings,
    *,
    paths_file: Path | None = None,
    search_filters: SearchFilters | None = None,
) -> PageSource:
    """An http(s) URL -> ContentApiSource; an existing snapshot folder -> SnapshotSource.

    `paths_file` (one base path or gov.uk URL per line) restricts either source to those
    pages (the source is then not `complete`). `search_filters` need an http(s) source.
    """
    source = str(source).strip()
    if source.startswith(("http://", "https://")):
        extra = (urlsplit(source).netloc,)
        paths = read_paths_file(paths_file, extra) if paths_file is not None else None
        return ContentApiSource(
            source,
            paths=paths,
            search_filters=search_filters or None,
            rate=settings.crawl_rate,
            timeout=settings.crawl_timeout,
            max_retries=settings.crawl_max_retries,
            max_backoff=settings.crawl_max_backoff,
            user_agent=settings.crawl_user_agent,
        )
    folder = Path(source).expanduser() if source else None
    if folder is not None and folder.is_dir():
        if search_filters:
            raise ValueError(
                "search filters need an http(s) Content API source, not a snapshot folder: "
                f"{source}"
            )
        paths = read_paths_file(paths_file) if paths_file is not None else None
        return SnapshotSource(folder, paths=paths)
    raise ValueError(f"source must be a snapshot folder or an http(s) URL: {source!r}")


__all__ = [
    "ContentApiSource",
    "PageSource",
    "RateLimiter",
    "SnapshotSource",
    "SourceError",
    "filename_to_path",
    "is_loopback_host",
    "normalise_path",
    "parse_retry_after",
    "path_to_filename",
    "read_paths_file",
    "source_from_settings",
]
