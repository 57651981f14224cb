"""Answer metrics that need no LLM, on hand-made cases with known scores. The embedding model
is the deterministic bag-of-words fake from tests/conftest.py (same words = similarity 1)."""

from __future__ import annotations

import pytest

from evaluation.metrics.answers import (
    answer_length,
    citation_validity,
    figure_grounding,
    key_fact_coverage,
    links_in,
    numbers_in,
    plain_text,
    semantic_similarity,
    stated_figures,
)
from evaluation.metrics.conversations import condense_similarity
from evaluation.metrics.unanswerable import unanswerable_case, unanswerable_summary

ANSWER = (
    "You must pay Statutory Sick Pay of £116.75 a week. "
    "It is paid for up to 28 weeks. "
    "See [Statutory Sick Pay](https://www.gov.uk/employers-sick-pay/entitlement)."
)


def test_key_fact_coverage_needs_meaning_and_numbers(fake_embedder):
    facts = [
        "Statutory Sick Pay of £116.75 a week",  # same words and number: covered
        "It is paid for up to 28 weeks",  # covered
        "It is paid for up to 52 weeks",  # same words, wrong number: not covered
        "employers claim it back from HMRC",  # not stated
    ]
    out = key_fact_coverage(ANSWER, facts, fake_embedder.embed, 0.8, 0.6)
    assert [f["covered"] for f in out["facts"]] == [True, True, False, False]
    assert out["score"] == 0.5 and (out["covered"], out["total"]) == (2, 4)
    assert out["facts"][2]["missing_numbers"] == ["52"]
    assert out["facts"][0]["similarity"] > 0.8


def test_key_fact_coverage_of_an_empty_answer_and_no_facts(fake_embedder):
    assert key_fact_coverage("", ["a fact"], fake_embedder.embed)["score"] == 0.0
    assert key_fact_coverage(ANSWER, [], fake_embedder.embed)["score"] is None


def test_a_fact_spanning_two_sentences_is_matched(fake_embedder):
    answer = "Apply to the council. Do it 10 working days before the event."
    fact = "apply to the council 10 working days before the event"
    out = key_fact_coverage(answer, [fact], fake_embedder.embed, 0.9, 0.9)
    assert out["score"] == 1.0
    assert out["facts"][0]["best_sentence"] == answer


def test_links_and_numbers():
    assert links_in(ANSWER + " https://www.gov.uk/x.") == [
        "https://www.gov.uk/employers-sick-pay/entitlement",
        "https://www.gov.uk/x",
    ]
    assert "gov.uk" not in plain_text(ANSWER) and "Statutory Sick Pay" in plain_text(ANSWER)
    assert numbers_in("£1,200 or 10% for three weeks") == {"1200", "10", "3"}


def test_citation_validity():
    out = citation_validity(
        ["https://a", "https://b", "https://c", "https://a"],
        retrieved_urls=["https://a", "https://b"],
        in_index={"https://a": True, "https://b": False},
    )
    assert out["cited"] == 3 and out["valid"] == 1 and out["score"] == pytest.approx(1 / 3)
    assert out["invalid"] == [
        {"url": "https://b", "reason": "not in the index"},
        {"url": "https://c", "reason": "not retrieved and not in the index"},
    ]
    assert citation_validity([], [], {})["score"] is None


def test_figure_grounding_against_used_sources_only():
    sources = ["The weekly rate of SSP is £116.75 for up to twenty-eight weeks, 28 weeks."]
    assert figure_grounding(ANSWER, sources) == {"score": 1.0, "figures": 2, "ungrounded": []}
    wrong = "SSP is £120 a week for 28 weeks."
    out = figure_grounding(wrong, sources)
    assert out["figures"] == 2 and out["ungrounded"] == ["£120"] and out["score"] == 0.5
    assert figure_grounding("No figures here.", sources)["score"] is None


def test_stated_figures_ignore_urls_and_numbers_from_the_question():
    refusal = (
        "I can't find an answer to that. Try searching GOV.UK: "
        "https://www.gov.uk/search/all?keywords=redundancy+pay+45+year+old+6+years"
    )
    assert stated_figures(refusal, "redundancy pay for a 45 year old after 6 years") == []
    assert stated_figures("You owe £3,000 for 6 years.", "after 6 years") == ["£3000"]


def test_unanswerable_cases():
    refused = unanswerable_case("cannot_answer", "I can't find an answer.", "q")
    invented = unanswerable_case("answered", "The fee is £13.", "What is the fee?")
    refused_with_figure = unanswerable_case("cannot_answer", "It costs £34.", "q")
    error = unanswerable_case("timeout", "Sorry, that took too long.", "q")
    assert refused["correct"] and not invented["correct"] and not refused_with_figure["correct"]
    assert not error["refused"] and error["error"]
    s = unanswerable_summary([refused, invented, refused_with_figure, error])
    assert s["correct_refusal_rate"] == 0.25
    assert s["refusal_rate"] == 0.5
    assert s["stated_figure_rate"] == 0.5
    assert s["errors"] == 1


def test_semantic_similarity_through_ragas_with_local_embeddings(fake_embedder):
    from evaluation.embeddings import ragas_embeddings

    emb = ragas_embeddings(fake_embedder)
    same = semantic_similarity("SSP is paid weekly.", "SSP is paid weekly", emb)
    assert same == pytest.approx(1.0, abs=1e-5)
    unrelated = semantic_similarity("Temporary event notices", "pension auto enrolment", emb)
    assert unrelated < 0.3
    assert semantic_similarity("", "reference", emb) is None


def test_condense_similarity_and_length(fake_embedder):
    assert condense_similarity("How much is SSP?", "How much is SSP?", fake_embedder.embed) == (
        pytest.approx(1.0, abs=1e-5)
    )
    assert condense_similarity("", "How much is SSP?", fake_embedder.embed) is None
    assert answer_length(ANSWER) == {"words": 22, "chars": len(plain_text(ANSWER))}
