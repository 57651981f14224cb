"""Retrieval metrics against hand-computed figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.retrieval import (
    RetrievalCase,
    ScoredCase,
    aggregate,
    load_retrieval_cases,
    matches_exact,
    matches_page,
    matches_source,
    normalise_path,
    page_path,
    score_case,
)

SSP = "/employers-sick-pay"
ENTITLEMENT = ("/employers-sick-pay/entitlement#when-to-start-paying-ssp", SSP)
ELIGIBILITY = ("/employers-sick-pay/eligibility-and-form-ssp1#exceptions", SSP)
SSP_INTRO = ("/employers-sick-pay#overview", SSP)
TEN = ("/temporary-events-notice#apply", "/temporary-events-notice")
WAGE = ("/national-minimum-wage-rates", "/national-minimum-wage-rates")


# ---------------------------------------------------------------- paths and matching


def test_page_path_drops_fragment_and_normalises_urls():
    assert page_path("/employers-sick-pay/entitlement#when-to-start") == (
        "/employers-sick-pay/entitlement"
    )
    assert page_path("/temporary-events-notice") == "/temporary-events-notice"
    assert normalise_path("https://www.gov.uk/employers-sick-pay/?x=1") == SSP


def test_exact_needs_the_same_part():
    assert matches_exact(ENTITLEMENT[0], "/employers-sick-pay/entitlement")
    assert not matches_exact(ELIGIBILITY[0], "/employers-sick-pay/entitlement")
    # the whole-guide path only matches the guide's first part exactly
    assert matches_exact(SSP_INTRO[0], SSP)
    assert not matches_exact(ENTITLEMENT[0], SSP)


def test_source_rule_accepts_any_part_of_an_expected_guide_only():
    assert matches_source(*ENTITLEMENT, SSP)
    assert matches_source(*ENTITLEMENT, "/employers-sick-pay/entitlement")
    assert not matches_source(*ELIGIBILITY, "/employers-sick-pay/entitlement")


def test_page_rule_accepts_any_part_of_the_same_guide():
    assert matches_page(*ELIGIBILITY, "/employers-sick-pay/entitlement")
    assert matches_page(*SSP_INTRO, "/employers-sick-pay/entitlement")
    assert not matches_page(*TEN, "/employers-sick-pay/entitlement")
    # a path that merely shares a prefix is another page
    assert not matches_page(*WAGE, "/national-minimum-wage/employers-and-the-minimum-wage")


def test_page_rule_uses_the_index_for_pages_published_below_another():
    about = ("/government/org/about#intro", "/government/org/about")
    nested = "/government/org/about/complaints-procedure"
    assert matches_page(*about, nested)  # inferred from the path: wrong here
    base_of = {nested: nested}
    assert not matches_page(*about, nested, base_of=base_of)
    assert matches_page(*ELIGIBILITY, "/employers-sick-pay/entitlement", base_of={})


# ---------------------------------------------------------------- score_case


def test_single_source_found_at_rank_3():
    m = score_case([TEN, WAGE, ENTITLEMENT, ELIGIBILITY], ["/employers-sick-pay/entitlement"])
    assert m["exact"]["hit@1"] == 0.0
    assert m["exact"]["hit@3"] == 1.0
    assert m["exact"]["recall@3"] == 1.0
    assert m["exact"]["rr"] == pytest.approx(1 / 3)
    assert m["page"]["rr"] == pytest.approx(1 / 3)


def test_page_matching_credits_another_part_earlier():
    m = score_case([ELIGIBILITY, TEN, ENTITLEMENT], ["/employers-sick-pay/entitlement"])
    assert m["page"]["hit@1"] == 1.0 and m["page"]["rr"] == 1.0
    assert m["source"]["hit@1"] == 0.0 and m["source"]["rr"] == pytest.approx(1 / 3)
    assert m["exact"]["rr"] == pytest.approx(1 / 3)


def test_multi_source_recall_counts_each_expected_source_once():
    expected = ["/employers-sick-pay/entitlement", "/temporary-events-notice"]
    m = score_case([WAGE, ENTITLEMENT, ENTITLEMENT, WAGE, WAGE, TEN], expected, ks=(1, 3, 5, 10))
    ex = m["exact"]
    assert (ex["hit@1"], ex["recall@1"]) == (0.0, 0.0)
    assert (ex["hit@3"], ex["recall@3"]) == (1.0, 0.5)  # the duplicate does not count twice
    assert (ex["hit@5"], ex["recall@5"]) == (1.0, 0.5)
    assert (ex["hit@10"], ex["recall@10"]) == (1.0, 1.0)
    assert ex["rr"] == pytest.approx(1 / 2)


def test_two_parts_of_one_guide_under_each_matching():
    expected = ["/employers-sick-pay/entitlement", "/employers-sick-pay/eligibility-and-form-ssp1"]
    m = score_case([ENTITLEMENT, TEN], expected, ks=(1, 2))
    assert m["exact"]["recall@1"] == 0.5
    assert m["source"]["recall@1"] == 0.5
    assert m["page"]["recall@1"] == 1.0  # one chunk of the guide stands for both parts


def test_no_match_and_empty_list_score_zero():
    for retrieved in ([TEN, WAGE], []):
        m = score_case(retrieved, [SSP])
        for matching in ("exact", "source", "page"):
            assert set(m[matching].values()) == {0.0}


def test_only_the_top_max_k_is_scored():
    m = score_case([TEN, WAGE, ENTITLEMENT], ["/employers-sick-pay/entitlement"], ks=(1, 2))
    assert m["exact"] == {
        "hit@1": 0.0,
        "recall@1": 0.0,
        "hit@2": 0.0,
        "recall@2": 0.0,
        "rr": 0.0,
    }


def test_bad_ks_are_refused():
    with pytest.raises(ValueError):
        score_case([TEN], [SSP], ks=(0, 5))


# ---------------------------------------------------------------- aggregate


def _scored(case_id: str, dataset: str, topic: str | None, rank: int | None) -> ScoredCase:
    case = RetrievalCase(case_id, dataset, "q", ("/a",), topic=topic, kind=None)
    retrieved = [("/x", "/x")] * 10
    if rank is not None:
        retrieved[rank - 1] = ("/a#h", "/a")
    return ScoredCase(case, score_case(retrieved, ["/a"]))


def test_aggregate_means_and_breakdowns():
    scored = [
        _scored("1", "rag_qa", "tax", 1),
        _scored("2", "rag_qa", "tax", 4),
        _scored("3", "rag_qa", "pensions", None),
        _scored("4", "conversations", None, 2),
    ]
    agg = aggregate(scored)
    assert agg["n"] == 4
    overall = agg["overall"]["page"]
    assert overall["hit@1"] == pytest.approx(1 / 4)
    assert overall["hit@3"] == pytest.approx(2 / 4)
    assert overall["hit@5"] == pytest.approx(3 / 4)
    assert overall["mrr"] == pytest.approx((1 + 1 / 4 + 0 + 1 / 2) / 4)
    assert agg["by_dataset"]["rag_qa"]["n"] == 3
    assert agg["by_dataset"]["conversations"]["exact"]["mrr"] == pytest.approx(0.5)
    assert agg["by_topic"]["tax"]["page"]["hit@3"] == pytest.approx(0.5)
    assert agg["by_topic"]["-"]["n"] == 1
    assert aggregate([])["n"] == 0


# ---------------------------------------------------------------- loading


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_load_rag_and_conversation_rows(tmp_path: Path):
    rag = _write(
        tmp_path / "rag_qa.jsonl",
        [
            {
                "id": "qa-1",
                "question": "When does SSP start?",
                "expected_sources": ["/employers-sick-pay/entitlement/"],
                "topic": "statutory_pay",
                "kind": "factual",
            },
            "",
            {"id": "un-1", "question": "No sources here", "expected_behaviour": "refuse"},
        ],
    )
    conv = _write(
        tmp_path / "conversations.jsonl",
        [
            {
                "id": "cv-1",
                "turns": [{"question": "Do I need a licence?"}, {"question": "How far ahead?"}],
                "standalone_last_question": "How far ahead must you give a TEN?",
                "expected_sources": ["/temporary-events-notice"],
            }
        ],
    )
    cases = load_retrieval_cases([rag, conv])
    assert [c.id for c in cases] == ["qa-1", "cv-1"]
    assert cases[0] == RetrievalCase(
        "qa-1",
        "rag_qa",
        "When does SSP start?",
        ("/employers-sick-pay/entitlement",),
        "statutory_pay",
        "factual",
    )
    assert cases[1].dataset == "conversations"
    assert cases[1].question == "How far ahead must you give a TEN?"
    assert cases[1].topic is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "qa-1", "question": "x", ', "invalid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"id": "qa-1", "question": "x", "expected_sources": "/a"}', "list of non-empty"),
        ('{"question": "x", "expected_sources": ["/a"]}', "missing id"),
        ('{"id": "cv-1", "turns": [], "expected_sources": ["/a"]}', "standalone_last_question"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, line: str, message: str):
    path = _write(
        tmp_path / "bad.jsonl", [{"id": "ok", "question": "q", "expected_sources": []}, line]
    )
    with pytest.raises(ValueError, match=message) as err:
        load_retrieval_cases([path])
    assert f"{path}:2" in str(err.value)


def test_the_development_sets_load():
    eval_dir = Path(__file__).resolve().parents[3] / "shared" / "eval"
    if not eval_dir.is_dir():
        pytest.skip("shared evaluation set not present")
    cases = load_retrieval_cases(
        [eval_dir / "rag_qa.jsonl", eval_dir / "conversations.jsonl", eval_dir / "guardrails.jsonl"]
    )
    assert len(cases) >= 80
    assert all(c.expected_sources and c.question for c in cases)
    assert len({c.id for c in cases}) == len(cases)
