"""Browser tests: headless system Chromium driven by Playwright, against a real uvicorn server.

Chromium missing -> the browser tests skip with the reason, or fail when CI is set.
Screenshots and the axe results go to test-artifacts/web/ (gitignored).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from govchat.settings import Settings
from tests.web.support import (
    ADMIN_TOKEN,
    HostSite,
    LiveServer,
    indexed_services_factory,
    make_snapshot,
    simple_services_factory,
    start_server,
)

CHROMIUM = Path(os.environ.get("GOVCHAT_CHROMIUM", "/usr/bin/chromium"))
AXE_JS = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _browser_problem() -> str | None:
    if not CHROMIUM.exists():
        return f"Chromium not found at {CHROMIUM}: run scripts/browser_setup.sh"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed: pip install -e '.[dev]'"
    return None


def require_browser() -> None:
    problem = _browser_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {problem}", pytrace=False)
        pytest.skip(problem)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    pw = sync_playwright().start()
    browser = pw.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS, timeout=60_000
    )
    yield browser
    browser.close()
    pw.stop()


def _settings(data_dir: Path, **kw) -> Settings:
    base = {
        "data_dir": data_dir,
        "collection": "web_test",
        "admin_token": ADMIN_TOKEN,
        "answer_min_dense_score": 0.0,
        "rate_limit_user_per_minute": 0,
        "rate_limit_client_per_minute": 0,
    }
    base.update(kw)
    return Settings(**base)


@pytest.fixture(scope="session")
def host_site():
    site = HostSite()
    yield site
    site.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory, host_site) -> LiveServer:
    """The main test server: an indexed snapshot of three pages (one with hostile text); the
    host site may call it from the browser (CORS)."""
    root = tmp_path_factory.mktemp("web")
    snapshot = make_snapshot(root / "snapshot")
    settings = _settings(root / "data", source=str(snapshot), cors_origins=[host_site.origin])
    live = start_server(settings, indexed_services_factory(snapshot), snapshot)
    yield live
    live.stop()


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory) -> LiveServer:
    """One question per end user a minute (rate-limit state); no index, no admin token."""
    root = tmp_path_factory.mktemp("web-limited")
    settings = _settings(root / "data", rate_limit_user_per_minute=1, admin_token=None)
    live = start_server(settings, simple_services_factory)
    yield live
    live.stop()


class PageErrors(list):
    pass


@pytest.fixture
def new_page(browser):
    """new_page(width=1280, height=900) -> a page in a fresh context; JS errors are recorded
    in page.js_errors and fail the test."""
    contexts = []

    def make(width: int = 1280, height: int = 900, **kw):
        context = browser.new_context(viewport={"width": width, "height": height}, **kw)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        errors = PageErrors()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.js_errors = errors
        return page

    yield make
    errors = []
    for context in contexts:
        for page in context.pages:
            errors += getattr(page, "js_errors", [])
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def run_axe(page, name: str, artifacts: Path) -> dict:
    """axe-core's WCAG 2.0/2.1/2.2 A+AA and best-practice rules on the page; results are
    written to test-artifacts/web/axe-<name>.json."""
    # evaluate() runs the library directly (a <script> tag could be refused by a strict CSP).
    page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    results = page.evaluate(
        """async () => {
            const r = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                                 "wcag22aa", "best-practice"]},
                resultTypes: ["violations"],
            });
            return {violations: r.violations.map(v => ({id: v.id, impact: v.impact,
                        help: v.help, nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)})),
                    passes: r.passes.length, incomplete: r.incomplete.length};
        }"""
    )
    (artifacts / f"axe-{name}.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def serious(results: dict) -> list[dict]:
    return [v for v in results["violations"] if v["impact"] in ("serious", "critical")]


@pytest.fixture
def tmp_profile():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)
