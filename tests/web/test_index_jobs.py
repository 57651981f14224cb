"""Re-indexing from the admin API: one job at a time, a dry run before any real run. The page
source is the fake GOV.UK Content API (a real HTTP server) with a slow page."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from chat_api.app import create_app
from tests.support.govuk_api import FakeGovukApi
from tests.web.conftest import _settings
from tests.web.support import ADMIN_TOKEN, indexed_services_factory, make_snapshot

BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _wait(client: TestClient) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get("/admin/api/index/job", headers=BEARER).json()
        if not job["busy"]:
            return job
        time.sleep(0.1)
    raise AssertionError("the index job did not finish")


@pytest.fixture
def setup(tmp_path):
    snapshot = make_snapshot(tmp_path / "snapshot")
    with FakeGovukApi(snapshot) as api:
        settings = _settings(tmp_path / "data", source=api.url, crawl_rate=10)
        app = create_app(settings, services_factory=indexed_services_factory(snapshot))
        with TestClient(app) as client:
            yield client, api


def test_one_job_at_a_time_and_only_an_applied_dry_run(setup):
    client, api = setup
    # A real run must apply a finished dry run.
    r = client.post("/admin/api/index/run", headers=BEARER, json={"plan_id": 1})
    assert r.status_code == 409 and "check for changes first" in r.json()["detail"]

    api.delay("/employers-sick-pay", 1.5, times=1)
    api.edit_page("/national-minimum-wage-rates", title="National Minimum Wage (edited)")
    first = client.post("/admin/api/index/dry-run", headers=BEARER)
    assert first.status_code == 202 and first.json()["kind"] == "dry_run"
    second = client.post("/admin/api/index/dry-run", headers=BEARER)
    assert second.status_code == 409 and "already running" in second.json()["detail"]
    r = client.post("/admin/api/index/run", headers=BEARER, json={"plan_id": first.json()["id"]})
    assert r.status_code == 409

    job = _wait(client)
    plan = job["plan"]
    assert plan["status"] == "completed" and plan["summary"]["dry_run"] is True
    changed = {c["base_path"]: c["action"] for c in plan["summary"]["changes"]}
    assert changed.get("/national-minimum-wage-rates") == "update"
    runs = client.get("/admin/api/index/runs", headers=BEARER).json()["runs"]
    assert runs[0]["dry_run"] is True and runs[0]["status"] == "completed"

    assert client.post("/admin/api/index/run", headers=BEARER, json={}).status_code == 422
    stale = client.post("/admin/api/index/run", headers=BEARER, json={"plan_id": 999})
    assert stale.status_code == 409
    run = client.post("/admin/api/index/run", headers=BEARER, json={"plan_id": plan["id"]})
    assert run.status_code == 202 and run.json()["kind"] == "run"
    _wait(client)
    runs = client.get("/admin/api/index/runs", headers=BEARER).json()["runs"]
    assert runs[0]["dry_run"] is False and runs[0]["status"] == "completed"
    assert runs[0]["summary"]["pages_changed"] >= 1
    titles = {
        p["base_path"]: p["title"]
        for p in client.get("/admin/api/index/pages", headers=BEARER).json()["pages"]
    }
    assert titles["/national-minimum-wage-rates"] == "National Minimum Wage (edited)"
