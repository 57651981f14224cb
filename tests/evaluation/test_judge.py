"""The ragas 0.4 judge against a real HTTP fake of an OpenAI-compatible server, replying with the
JSON each ragas prompt asks for. Failures and time-outs are counted, never averaged in."""

from __future__ import annotations

import json

import pytest

from evaluation.embeddings import ragas_embeddings
from evaluation.metrics.judge import (
    JudgeConfig,
    applicable,
    case_judged_means,
    judge_case,
    judge_inputs,
    summarise_judged,
)
from tests.support.openai_server import FakeOpenAIServer, Reply

QUESTION = "How much is Statutory Sick Pay?"
INPUTS = {
    "question": QUESTION,
    "answer": "Statutory Sick Pay is £116.75 a week.",
    "prompt_contexts": ["The weekly rate for Statutory Sick Pay is £116.75."],
    "retrieved_contexts": ["The weekly rate for Statutory Sick Pay is £116.75.", "Other text."],
    "reference": "SSP is £116.75 a week.",
}


def ragas_judge(verdict: int = 1):
    """Reply to each ragas prompt with JSON of the schema it names (all supported, or none)."""

    def reply(body):
        system = body["messages"][0]["content"]
        if "StatementFaithfulnessAnswer" in system:
            return {"statements": [{"statement": "s", "reason": "r", "verdict": verdict}]}
        if "statement generation" in system:
            return {"statements": ["Statutory Sick Pay is £116.75 a week."]}
        if "answer relevance" in system:
            return {"question": QUESTION, "noncommittal": 0}
        if "claim decomposition" in system:
            return {"claims": ["Statutory Sick Pay is £116.75 a week."]}
        if "context precision" in system:
            return {"reason": "useful", "verdict": verdict}
        if "ContextRecallClassification" in system:
            return {"classifications": [{"statement": "s", "reason": "r", "attributed": verdict}]}
        return Reply(status=400, error_message="unexpected prompt")

    return reply


@pytest.fixture
def emb(fake_embedder):
    return ragas_embeddings(fake_embedder)


def test_every_judged_metric_scores_a_fully_supported_answer_as_1(emb):
    with FakeOpenAIServer(ragas_judge(1)) as server:
        out = judge_case(JudgeConfig(server.base_url, "judge-model", timeout=30), emb, INPUTS)
        assert server.chat_requests[0].body["model"] == "judge-model"
    assert set(out) == {
        "faithfulness",
        "answer_relevancy",
        "factual_correctness",
        "context_precision",
        "context_recall",
    }
    for name, result in out.items():
        assert result == {"value": pytest.approx(1.0, abs=1e-4)}, name


def test_unsupported_answer_scores_0(emb):
    with FakeOpenAIServer(ragas_judge(0)) as server:
        out = judge_case(JudgeConfig(server.base_url, "m", timeout=30), emb, INPUTS)
    assert out["faithfulness"]["value"] == 0.0
    assert out["context_recall"]["value"] == 0.0
    assert out["context_precision"]["value"] == pytest.approx(0.0, abs=1e-6)


def test_judge_failures_and_timeouts_are_recorded_with_reasons(emb):
    with FakeOpenAIServer(Reply(status=500)) as server:
        failed = judge_case(JudgeConfig(server.base_url, "m", timeout=20), emb, INPUTS)
    assert all("error" in v and "value" not in v for v in failed.values())
    with FakeOpenAIServer(Reply(delay=3, content={"statements": []})) as server:
        slow = judge_case(JudgeConfig(server.base_url, "m", timeout=0.5), emb, INPUTS)
    assert slow and all(v == {"error": "timeout", "timeout": True} for v in slow.values())


def test_summary_counts_failures_and_gives_intervals_between_repeats():
    records = [
        {"key": "a", "repeat": 0, "metrics": {"faithfulness": {"value": 1.0}}},
        {"key": "b", "repeat": 0, "metrics": {"faithfulness": {"value": 0.5}}},
        {
            "key": "c",
            "repeat": 0,
            "metrics": {"faithfulness": {"error": "timeout", "timeout": True}},
        },
        {"key": "a", "repeat": 1, "metrics": {"faithfulness": {"value": 0.5}}},
        {"key": "b", "repeat": 1, "metrics": {"faithfulness": {"value": 0.5}}},
        {"key": "c", "repeat": 1, "metrics": {"faithfulness": {"error": "APIError: boom"}}},
    ]
    s = summarise_judged(records, repeats=2)["faithfulness"]
    assert s["repeat_means"] == [0.75, 0.5]
    assert s["mean"] == pytest.approx(0.625)
    assert s["ci95_between"] == "repeats" and s["ci95"][0] < 0.625 < s["ci95"][1]
    assert (s["scored"], s["failed"], s["timeouts"], s["applicable"]) == (4, 2, 1, 6)
    assert s["failure_reasons"] == {"timeout": 1, "APIError": 1}
    per_case = case_judged_means(records)
    assert per_case["a"]["faithfulness"] == {"mean": 0.75, "failed": 0}
    assert per_case["c"]["faithfulness"] == {"mean": None, "failed": 2}
    json.dumps(s)  # no NaN anywhere: valid JSON


def test_inputs_and_applicable_metrics_from_a_recorded_outcome():
    outcome = {
        "status": "cannot_answer",
        "question": "q",
        "condensed_question": "",
        "message": "I can't find an answer.",
        "contexts": [{"text": "full", "prompt_text": None}],
    }
    inputs = judge_inputs(outcome, "reference")
    assert inputs["answer"] == "" and inputs["retrieved_contexts"] == ["full"]
    assert applicable(inputs) == ["context_precision", "context_recall"]
    assert applicable(judge_inputs(outcome, "")) == []
