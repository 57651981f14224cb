"""`govchat eval` end to end: bad input is a clear error (no traceback); the CI subset runs
offline through the gate with the real index (a few snapshot pages), the real embedding model
and guardrails, and an extractive fake chat model served over HTTP at the LLM boundary; a rerun
with the same --out resumes; a baseline comparison runs."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from govchat.cli import app
from govchat.settings import get_settings
from tests.support.openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[2]
CI_SUBSET = ROOT / "evaluation" / "datasets" / "ci_subset.jsonl"
CI_THRESHOLDS = ROOT / "evaluation" / "thresholds_ci.yaml"
PAGES = [
    "/employers-sick-pay",
    "/temporary-events-notice",
    "/maternity-pay-leave",
    "/national-minimum-wage-rates",
]
runner = CliRunner()


def _json(result) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object on stdout
    return json.loads(lines[0])


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GOVCHAT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "x", "question": "q"}', "bad.jsonl:2: unknown kind of case"),
        ("{oops", "bad.jsonl:2: invalid JSON"),
        ('{"id": "x", "question": "q", "expected_route": "maybe"}', "bad.jsonl:2: expected_route"),
    ],
)
def test_bad_dataset_lines_are_clear_errors(env, line, message):
    bad = env / "bad.jsonl"
    bad.write_text('{"id": "ok", "question": "q", "expected_route": "answer"}\n' + line + "\n")
    result = runner.invoke(app, ["eval", str(bad), "--out", str(env / "out"), "--json"])
    assert result.exit_code == 2
    assert message in _json(result)["error"]
    assert "Traceback" not in result.output


def test_missing_files_are_clear_errors(env):
    result = runner.invoke(app, ["eval", str(env / "nope.jsonl"), "--json"])
    assert result.exit_code == 2 and "dataset file not found" in _json(result)["error"]
    result = runner.invoke(
        app, ["eval", str(CI_SUBSET), "--thresholds", str(env / "t.yaml"), "--json"]
    )
    assert result.exit_code == 2 and "thresholds file not found" in _json(result)["error"]
    result = runner.invoke(app, ["eval", str(CI_SUBSET), "--baseline", str(env), "--json"])
    assert result.exit_code == 2 and "baseline results not found" in _json(result)["error"]


def extractive_llm(body):
    """A chat model that copies evidence: condense joins the turns, compose quotes the first
    source's first two lines and cites it, the LLM jailbreak check finds no attack."""
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    if "Rewrite the user's latest message" in system:
        asked = re.findall(r"User: (.*)", user) + re.findall(r"Latest message: (.*)", user)
        return " ".join(asked)
    if "You screen messages" in system:
        return {"attack": False, "reason": "ordinary question"}
    block = re.search(r"\[link_1\][^\n]*\n(.*?)(?:\n\n\[link_2\]|\Z)", user, re.DOTALL)
    lines = [ln.strip("-| ") for ln in (block.group(1) if block else "").splitlines()]
    text = " ".join(ln for ln in lines if ln)[:400]
    return {"answer": text or "No answer.", "complete": bool(text), "sources": ["link_1"]}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    from govchat.services import build_indexer, open_store
    from govchat.settings import Settings
    from ingest.sources import SnapshotSource

    data = tmp_path_factory.mktemp("ci-eval")
    settings = Settings(data_dir=data, collection="ci_eval")
    store = open_store(settings)
    build_indexer(settings, store).run(SnapshotSource(settings.source, paths=PAGES))
    store.client.close()
    return data


@pytest.mark.slow
def test_ci_subset_passes_the_gate_resumes_and_compares(indexed, monkeypatch, tmp_path):
    monkeypatch.setenv("GOVCHAT_DATA_DIR", str(indexed))
    monkeypatch.setenv("GOVCHAT_COLLECTION", "ci_eval")
    get_settings.cache_clear()
    out = tmp_path / "run"
    args = ["eval", str(CI_SUBSET), "--out", str(out), "--gate", "--json"]
    args += ["--thresholds", str(CI_THRESHOLDS)]
    try:
        with FakeOpenAIServer(extractive_llm) as server:
            monkeypatch.setenv("GOVCHAT_LLM_BASE_URL", server.base_url)
            get_settings.cache_clear()
            first = runner.invoke(app, args)
            assert "summary" in _json(first), first.output
            summary = _json(first)["summary"]
            assert first.exit_code == 0, (first.output, summary["gate"])
            composed = len([r for r in server.chat_requests if "[link_1]" in str(r.messages)])
            assert composed >= 5  # answers were really composed by the (fake) model

            results = json.loads((out / "results.json").read_text())
            assert summary["completed"] == summary["cases"] == 11
            assert summary["gate"]["passed"] and not summary["gate"]["failed_thresholds"]
            m = summary["metrics"]
            assert m["routing.recall.jailbreak"] == 1.0
            assert m["unanswerable.stated_figure_rate"] == 0.0
            cases = {c["id"]: c for c in results["cases"]}
            assert cases["ci-g3"]["redactions"] and "QQ 12" not in cases["ci-g3"]["message"]
            conv = cases["ci-c1"]
            assert len(conv["turns"]) == 2 and "fete" in conv["condensed_question"]
            assert conv["retrieved"][0].startswith("/temporary-events-notice")
            assert cases["ci-a1"]["status"] == "answered" and "116.75" in cases["ci-a1"]["message"]
            page = (out / "report.html").read_text()
            assert "Evaluation report for the Responsible AI panel" in page
            with (out / "cases.csv").open(newline="") as fh:
                assert len(list(csv.reader(fh))) == 12  # a header and a row per case
            config = json.loads((out / "run_config.json").read_text())
            assert config["datasets"][0]["sha256"] and config["corpus"]["pages"] == 4

            server.reset()
            again = runner.invoke(app, args + ["--baseline", str(out)])
            assert again.exit_code == 0, again.output
            assert not [r for r in server.chat_requests if "[link_1]" in str(r.messages)]
            assert _json(again)["summary"]["completed"] == 11
    finally:
        get_settings.cache_clear()
