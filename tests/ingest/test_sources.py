"""Page sources against a real local HTTP server (tests/support/govuk_api.py) and the snapshot."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from govchat.settings import BUNDLED_SNAPSHOT, Settings
from ingest.sources import (
    ContentApiSource,
    PageSource,
    SnapshotSource,
    SourceError,
    normalise_path,
    parse_retry_after,
    read_paths_file,
    source_from_settings,
)
from ingest.types import Failed, Fetched, Gone
from tests.support.govuk_api import FakeGovukApi

UA = "govchat-test/1.0 (+https://example.org/govchat-tests)"
GUIDE = "/1619-bursary-fund"
ANSWER = "/apply-apprenticeship"  # format: answer


class FakeTime:
    """Virtual clock advanced only by sleep(): backoff waits are recorded, not slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    @property
    def backoffs(self) -> list[float]:
        """Sleeps longer than the rate limiter's (1/200 s) spacing."""
        return [s for s in self.sleeps if s > 0.01]


@pytest.fixture
def api():
    with FakeGovukApi() as server:
        yield server


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_source(api: FakeGovukApi, fake_time: FakeTime | None = None, **kwargs) -> ContentApiSource:
    options = dict(rate=200, timeout=2.0, max_retries=3, max_backoff=8.0, user_agent=UA)
    if fake_time is not None:
        options.update(sleep=fake_time.sleep, clock=fake_time.clock)
    options.update(kwargs)
    return ContentApiSource(api.url, **options)


# ---------------------------------------------------------------- enumeration


def test_search_enumeration_is_paged_and_complete(api: FakeGovukApi) -> None:
    with make_source(api, search_page_size=50) as source:
        assert isinstance(source, PageSource)
        paths = source.list_paths()
        assert source.complete is True
    assert len(paths) == 268 == len(set(paths))
    assert paths == api.paths()
    searches = api.requests_for("/api/search.json")
    assert [r.query["start"] for r in searches] == [[str(s)] for s in range(0, 300, 50)]
    assert all(r.query["count"] == ["50"] and r.query["fields"] == ["link"] for r in searches)


def test_search_filters_are_sent_and_make_source_incomplete(api: FakeGovukApi) -> None:
    with make_source(api, search_filters={"format": "guide"}, search_page_size=30) as source:
        guides = source.list_paths()
        assert source.complete is False
        assert "filter_format=guide" in source.description
    assert len(guides) == 80 and GUIDE in guides and ANSWER not in guides
    assert all(r.query["filter_format"] == ["guide"] for r in api.requests_for("/api/search.json"))

    api.clear_log()
    with make_source(api, search_filters={"filter_format": ["guide", "answer"]}) as source:
        assert len(source.list_paths()) == 80 + 47
    (search,) = api.requests_for("/api/search.json")
    assert search.query["filter_format"] == ["guide", "answer"]


def test_search_links_are_normalised_and_off_site_links_ignored(api: FakeGovukApi) -> None:
    for link in (
        "https://www.gov.uk/extra-page?x=1#frag",
        "https://example.com/not-gov",
        f"{api.url}/local-absolute",
        GUIDE,
        "https://www.gov.uk" + GUIDE,
    ):
        api.add_search_result({"link": link})
    with make_source(api) as source:
        paths = source.list_paths()
    assert paths[-2:] == ["/extra-page", "/local-absolute"]
    assert paths.count(GUIDE) == 1
    assert not any("example" in p or "not-gov" in p for p in paths)


def test_search_failure_raises_source_error_after_retries(
    api: FakeGovukApi, fake_time: FakeTime
) -> None:
    api.fail("/api/search.json", 500, times=1)
    with make_source(api, fake_time) as source:
        assert len(source.list_paths()) == 268  # one retry, then fine
    api.fail("/api/search.json", 503)
    with (
        make_source(api, fake_time, max_retries=1) as source,
        pytest.raises(SourceError, match="503"),
    ):
        source.list_paths()


def test_paths_file_restricts_the_crawl(api: FakeGovukApi, tmp_path: Path) -> None:
    paths_file = tmp_path / "paths.txt"
    paths_file.write_text(
        f"# employer pages\n\n{GUIDE}\nhttps://www.gov.uk{ANSWER}  # full URL\n"
        f"   {GUIDE}/  \nhttps://www.gov.uk/vehicle-tax?foo=1\n",
        encoding="utf-8",
    )
    settings = Settings(crawl_rate=50, crawl_user_agent=UA)
    source = source_from_settings(api.url, settings, paths_file=paths_file)
    try:
        assert isinstance(source, ContentApiSource)
        assert source.complete is False
        assert source.list_paths() == [GUIDE, ANSWER, "/vehicle-tax"]
        assert isinstance(source.fetch(GUIDE), Fetched)
        assert source.rate == 50 and source.user_agent == UA
    finally:
        source.close()
    assert api.requests_for("/api/search.json") == []

    (tmp_path / "bad.txt").write_text("https://example.com/page\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.txt:1"):
        read_paths_file(tmp_path / "bad.txt")


# ---------------------------------------------------------------- retries


def test_429_retry_after_is_honoured(api: FakeGovukApi, fake_time: FakeTime) -> None:
    api.fail(GUIDE, 429, times=2, retry_after=3)
    with make_source(api, fake_time) as source:
        result = source.fetch(GUIDE)
    assert isinstance(result, Fetched) and result.item["base_path"] == GUIDE
    assert fake_time.backoffs == [3.0, 3.0]
    assert len(api.requests_for(GUIDE)) == 3


def test_retry_after_is_capped_and_http_dates_are_understood(
    api: FakeGovukApi, fake_time: FakeTime
) -> None:
    api.fail(GUIDE, 429, times=1, retry_after=120)
    with make_source(api, fake_time, max_backoff=5) as source:
        assert isinstance(source.fetch(GUIDE), Fetched)
    assert fake_time.backoffs == [5.0]

    now = datetime(2024, 11, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Fri, 01 Nov 2024 12:00:07 GMT", now) == pytest.approx(7)
    assert parse_retry_after("Fri, 01 Nov 2024 11:00:00 GMT", now) == 0
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_500_then_success_with_exponential_backoff(api: FakeGovukApi, fake_time: FakeTime) -> None:
    api.fail(GUIDE, 500, times=1)
    api.fail(ANSWER, 503, times=5)
    with make_source(api, fake_time, max_retries=5, max_backoff=3) as source:
        assert isinstance(source.fetch(GUIDE), Fetched)
        assert fake_time.backoffs == [1.0]
        fake_time.sleeps.clear()
        assert isinstance(source.fetch(ANSWER), Fetched)
        assert fake_time.backoffs == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_retries_exhausted_gives_failed(api: FakeGovukApi, fake_time: FakeTime) -> None:
    api.fail(GUIDE, 503)
    with make_source(api, fake_time, max_retries=2) as source:
        result = source.fetch(GUIDE)
    assert isinstance(result, Failed) and result.base_path == GUIDE
    assert "503" in result.error and "3 attempts" in result.error
    assert len(api.requests_for(GUIDE)) == 3
    assert fake_time.backoffs == [1.0, 2.0]


def test_slow_response_times_out_then_retries_or_fails(
    api: FakeGovukApi, fake_time: FakeTime
) -> None:
    api.delay(GUIDE, 1.0, times=1)
    api.delay(ANSWER, 1.0)
    started = time.monotonic()
    with make_source(api, fake_time, timeout=0.25, max_retries=1) as source:
        assert isinstance(source.fetch(GUIDE), Fetched)  # 1st attempt times out, 2nd is fast
        result = source.fetch(ANSWER)
    assert isinstance(result, Failed) and "Timeout" in result.error
    assert len(api.requests_for(GUIDE)) == 2 and len(api.requests_for(ANSWER)) == 2
    assert time.monotonic() - started < 2.5  # three 0.25 s timeouts, not the 1 s delays


# ---------------------------------------------------------------- bad bodies and statuses


def test_malformed_json_fails_without_retry_and_the_crawl_continues(
    api: FakeGovukApi, fake_time: FakeTime
) -> None:
    api.malformed_json(GUIDE)
    api.set_page("/a-list", "[1, 2, 3]")
    api.fail("/html-page", 200, body="<html><body>Hi</body></html>", content_type="text/html")
    paths = [GUIDE, "/a-list", "/html-page", ANSWER]
    with make_source(api, fake_time, paths=paths) as source:
        results = [source.fetch(p) for p in source.list_paths()]
    assert [r.kind for r in results] == ["failed", "failed", "failed", "fetched"]
    assert "not valid JSON" in results[0].error
    assert "list" in results[1].error
    assert "text/html" in results[2].error
    assert fake_time.backoffs == []
    assert all(len(api.requests_for(p)) == 1 for p in paths)


def test_broken_html_inside_valid_item_is_fetched(api: FakeGovukApi) -> None:
    api.broken_html(GUIDE)
    with make_source(api) as source:
        result = source.fetch(GUIDE)
    assert isinstance(result, Fetched)
    assert "Unclosed paragraph" in result.item["details"]["parts"][0]["body"]


def test_404_and_410_are_gone_other_4xx_failed(api: FakeGovukApi, fake_time: FakeTime) -> None:
    api.remove_page(GUIDE)  # 410 by default, and dropped from search
    api.fail(ANSWER, 404)
    api.fail("/forbidden", 403)
    with make_source(api, fake_time) as source:
        assert source.fetch(GUIDE) == Gone(GUIDE, 410)
        assert source.fetch(ANSWER) == Gone(ANSWER, 404)
        assert source.fetch("/no-such-page") == Gone("/no-such-page", 404)
        forbidden = source.fetch("/forbidden")
        assert isinstance(forbidden, Failed) and "403" in forbidden.error
        assert GUIDE not in source.list_paths()
    assert fake_time.backoffs == []


def test_redirects_are_followed_and_keep_the_requested_path(api: FakeGovukApi) -> None:
    api.redirect("/old-bursary", GUIDE)  # 303, like GOV.UK
    api.redirect("/older-bursary", "/old-bursary", status=301)
    api.redirect("/leaves-site", "https://example.com/api/content/x", status=302)
    with make_source(api) as source:
        result = source.fetch("/older-bursary")
        off_site = source.fetch("/leaves-site")
    assert isinstance(result, Fetched)
    assert result.base_path == "/older-bursary"
    assert result.item["base_path"] == GUIDE
    assert isinstance(off_site, Failed) and "off-site" in off_site.error


def test_edited_page_is_served(api: FakeGovukApi) -> None:
    with make_source(api) as source:
        before = source.fetch(ANSWER)
        api.edit_page(ANSWER, title="Edited title")
        after = source.fetch(ANSWER)
        api.restore_page(ANSWER)
        restored = source.fetch(ANSWER)
    assert isinstance(before, Fetched) and isinstance(after, Fetched)
    assert after.item["title"] == "Edited title" != before.item["title"]
    assert isinstance(restored, Fetched) and restored.item == before.item


# ---------------------------------------------------------------- politeness


def test_user_agent_and_accept_sent_on_every_request(api: FakeGovukApi) -> None:
    with make_source(api, search_page_size=100) as source:
        source.fetch(source.list_paths()[0])
    assert len(api.requests) == 4
    assert all(r.user_agent == UA for r in api.requests)
    assert all("json" in r.headers.get("accept", "") for r in api.requests)


def test_rate_limit_spaces_requests(api: FakeGovukApi) -> None:
    paths = api.paths()[:10]
    with make_source(api, rate=20) as source:
        started = time.monotonic()
        results = [source.fetch(p) for p in paths]
        elapsed = time.monotonic() - started
    assert all(isinstance(r, Fetched) for r in results)
    assert elapsed >= 0.45
    stamps = [r.timestamp for r in api.requests]
    assert stamps[-1] - stamps[0] >= 0.4
    assert min(b - a for a, b in zip(stamps, stamps[1:], strict=False)) >= 0.04


def test_rate_above_maximum_only_allowed_on_loopback() -> None:
    with pytest.raises(ValueError, match="exceeds the maximum"):
        ContentApiSource("https://www.gov.uk", rate=11)
    with pytest.raises(ValueError, match="> 0"):
        ContentApiSource("https://www.gov.uk", rate=0)
    ContentApiSource("https://www.gov.uk", rate=10).close()
    for url in (
        "http://127.0.0.1:9",
        "http://127.5.0.1",
        "http://localhost:8080",
        "http://[::1]:80",
    ):
        ContentApiSource(url, rate=500).close()


# ---------------------------------------------------------------- snapshot and construction


def test_snapshot_source_lists_and_fetches() -> None:
    source = SnapshotSource(BUNDLED_SNAPSHOT)
    paths = source.list_paths()
    assert source.complete is True and len(paths) == 268 == len(set(paths))
    assert paths == sorted(paths) and GUIDE in paths
    result = source.fetch(GUIDE)
    assert isinstance(result, Fetched) and result.item["base_path"] == GUIDE
    nested = next(p for p in paths if p.count("/") > 1)
    fetched = source.fetch(nested)
    assert isinstance(fetched, Fetched) and fetched.item["base_path"] == nested
    assert source.fetch("/no-such-page") == Gone("/no-such-page", 404)


def test_snapshot_source_bad_files(tmp_path: Path) -> None:
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "bad__json.json").write_text("{nope", encoding="utf-8")
    (tmp_path / "content" / "a-list.json").write_text(json.dumps([1]), encoding="utf-8")
    source = SnapshotSource(tmp_path)
    assert source.list_paths() == ["/a-list", "/bad/json"]
    bad, listed = source.fetch("/bad/json"), source.fetch("/a-list")
    assert isinstance(bad, Failed) and "invalid JSON" in bad.error
    assert isinstance(listed, Failed) and "list" in listed.error
    with pytest.raises(ValueError, match="not a snapshot folder"):
        SnapshotSource(tmp_path / "content")


def test_source_from_settings(tmp_path: Path) -> None:
    settings = Settings()
    snapshot = source_from_settings(str(BUNDLED_SNAPSHOT), settings)
    assert isinstance(snapshot, SnapshotSource) and snapshot.complete
    remote = source_from_settings("https://www.gov.uk/", settings)
    assert isinstance(remote, ContentApiSource)
    assert remote.base_url == "https://www.gov.uk" and remote.complete
    assert remote.rate == settings.crawl_rate and remote.timeout == settings.crawl_timeout
    remote.close()
    for bad in (str(tmp_path / "missing"), "ftp://example.com", ""):
        with pytest.raises(ValueError, match="source must be a snapshot folder or an http"):
            source_from_settings(bad, settings)
    with pytest.raises(ValueError, match="search filters need"):
        source_from_settings(str(BUNDLED_SNAPSHOT), settings, search_filters={"format": "guide"})


def test_normalise_path() -> None:
    assert normalise_path("/a/b/") == "/a/b"
    assert normalise_path("a/b") == "/a/b"
    assert normalise_path("https://gov.uk/a?x=1#y") == "/a"
    assert normalise_path("https://www.gov.uk") == "/"
    assert normalise_path("https://evil.example/a") is None
    assert normalise_path("http://127.0.0.1:5000/a", ["127.0.0.1:5000"]) == "/a"
