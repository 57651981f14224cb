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


def test_search_needs_an_index_and_one_kind_of_query(env):
    empty = runner.invoke(app, ["search", "sick pay", "--json"])
    assert empty.exit_code == 1 and "run `govchat index` first" in _json(empty)["error"]
    both = runner.invoke(app, ["search", "x", "--queries", "f.txt"])
    assert both.exit_code == 2 and "either a QUERY or --queries" in both.output
    mode = runner.invoke(app, ["search", "x", "--mode", "magic"])
    assert mode.exit_code == 2 and "--mode" in mode.output


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

    # govchat search: the contract's shape, with the real model's vectors behind it.
    found = _json(
        runner.invoke(
            app, ["search", "how much is the minimum wage per hour", "--k", "2", "--json"]
        )
    )
    assert len(found["results"]) == 2
    top = found["results"][0]
    assert {"chunk_id", "url", "exact_path", "title", "heading_trail", "score", "text"} <= set(top)
    assert top["exact_path"].startswith("/national-minimum-wage-rates")
    assert set(top["stages"]) >= {"dense", "sparse", "fused", "weight", "final"}

    queries = env / "queries.txt"
    queries.write_text("form SSP1\n\n# comment\n\u200b\u200b\nmaternity pay\n")
    batch = _json(runner.invoke(app, ["search", "--queries", str(queries), "--json"]))
    assert [q["query"] for q in batch["queries"]] == ["form SSP1", "\u200b\u200b", "maternity pay"]
    assert batch["queries"][1]["error"].startswith("invalid query")
    assert batch["queries"][0]["results"][0]["exact_path"].startswith(
        "/employers-sick-pay/eligibility-and-form-ssp1"
    )

    bad = runner.invoke(app, ["search", "\x01\x02", "--json"])
    assert bad.exit_code == 2 and "invalid query" in _json(bad)["error"]
    table = runner.invoke(app, ["search", "sick pay form", "--k", "1"])
    assert (
        table.exit_code == 0 and "dense" in table.output and "https://www.gov.uk/" in table.output
    )


def test_apikey_lifecycle_and_purge(env):
    created = _json(runner.invoke(app, ["apikey", "create", "widget", "--json"]))
    assert created["key"].startswith("gck_")
    dup = runner.invoke(app, ["apikey", "create", "widget", "--json"])
    assert dup.exit_code == 2 and "already exists" in _json(dup)["error"]
    listed = _json(runner.invoke(app, ["apikey", "list", "--json"]))["keys"]
    assert [k["name"] for k in listed] == ["widget"]
    assert created["key"] not in json.dumps(listed)  # the secret is never shown again
    assert runner.invoke(app, ["apikey", "revoke", "widget"]).exit_code == 0
    again = runner.invoke(app, ["apikey", "revoke", "widget", "--json"])
    assert again.exit_code == 2 and "no active API key" in _json(again)["error"]

    purged = _json(runner.invoke(app, ["purge", "--older-than", "30", "--json"]))
    assert "deleted" in purged
    bad = runner.invoke(app, ["purge", "--older-than", "-1"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_ask_without_an_index_is_a_clear_error(env):
    r = runner.invoke(app, ["ask", "How much is SSP?", "--json"])
    assert r.exit_code == 1 and "run `govchat index` first" in _json(r)["error"]
