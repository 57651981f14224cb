"""The `govchat` command line, end to end in a subprocess-free runner, with the real models."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from govchat.cli import app
from govchat.settings import get_settings

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GOVCHAT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _json(result) -> dict:
    assert result.stdout.count("\n") == 1, result.stdout  # exactly one JSON object on stdout
    return json.loads(result.stdout)


def test_bad_source_is_a_clear_error_not_a_traceback(env):
    result = runner.invoke(app, ["index", "--source", str(env / "nope"), "--json"])
    assert result.exit_code == 2
    assert "snapshot folder or an http(s) URL" in _json(result)["error"]
    assert "Traceback" not in result.output


def test_bad_filter_and_missing_paths_file(env):
    r1 = runner.invoke(app, ["index", "--filter", "format", "--source", "https://www.gov.uk"])
    assert r1.exit_code == 2 and "NAME=VALUE" in r1.output
    r2 = runner.invoke(app, ["index", "--paths", str(env / "missing.txt")])
    assert r2.exit_code == 2 and "not found" in r2.output


@pytest.mark.slow
def test_index_with_the_real_model_then_dry_run_and_status(env):
    paths = env / "paths.txt"
    paths.write_text(
        "# three pages\n/employers-sick-pay\n/maternity-pay-leave\n"
        "https://www.gov.uk/national-minimum-wage-rates\n"
    )
    first = runner.invoke(app, ["index", "--paths", str(paths), "--json"])
    assert first.exit_code == 0, first.output
    s = _json(first)
    assert s["status"] == "completed" and s["pages_indexed"] == 3
    assert s["chunks_embedded"] == s["chunks_added"] == s["chunks_total"] > 10

    again = _json(runner.invoke(app, ["index", "--paths", str(paths), "--dry-run", "--json"]))
    assert again["chunks_embedded"] == 0 and again["changes"] == []
    assert again["chunks_unchanged"] == s["chunks_total"]

    status = runner.invoke(app, ["index", "status", "--json"])
    st = _json(status)
    assert st["chunks"] == s["chunks_total"] and st["pages"] == 3
    assert [r["status"] for r in st["runs"]] == ["completed", "completed"]
    assert st["runs"][0]["dry_run"] is True

    human = runner.invoke(app, ["index", "status"])
    assert f"{s['chunks_total']} chunks from 3 pages" in human.output

    # The real model put vectors in that match the query's meaning.
    from govchat.services import open_store
    from retrieval.embeddings import load_embedder

    store = open_store(get_settings())
    vec = load_embedder("all-MiniLM-L6-v2").embed(["how much is the minimum wage per hour"])[0]
    hit = store.client.query_points(
        store.collection, query=list(map(float, vec)), using="dense", limit=1, with_payload=True
    ).points[0]
    store.client.close()
    assert hit.payload["base_path"] == "/national-minimum-wage-rates"
