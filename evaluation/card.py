"""The system card shown in the report, in the spirit of the UK Algorithmic Transparency
Recording Standard: purpose, models and versions, prompts and guardrails with versions, data
sources and snapshot date, human oversight, known limitations and risks."""

from __future__ import annotations

from typing import Any

PURPOSE = (
    "Answers questions from businesses and employers about GOV.UK guidance (employing people, "
    "pay, tax and running a business), in plain English, citing the GOV.UK sections each answer "
    "comes from. It gives general guidance, not advice on anyone's own circumstances, and says "
    "so when the guidance it holds does not answer a question."
)
HOW_IT_WORKS = (
    "Each question is checked for length, has personal data removed, is screened for "
    "manipulation attempts and sorted (genuine question, greeting, off-topic, harmful, "
    "personal advice, another language, crisis). A follow-up is rewritten as a standalone "
    "question. Genuine questions are matched against an index of GOV.UK pages (meaning and "
    "keyword search); a language model writes an answer only from the matched sections; "
    "output checks remove links and figures that are not in those sections and block personal "
    "data, advice and forbidden terms. If nothing relevant is found or the model is unsure, the "
    "service says it cannot answer and points to GOV.UK search or the right contact."
)
GUARDRAILS_TEXT = (
    "Every guardrail returns a verdict with a reason and a version (recorded with each answer). "
    "The offline guardrails (rules, Presidio personal-data recognisers, small local classifiers) "
    "always run; an LLM check is added when a server LLM is configured."
)
OVERSIGHT = (
    "This report is reviewed by the Responsible AI panel before a release; the release gate "
    "(`govchat eval --gate`) fails when a threshold is not met or a measure regresses against "
    "the last accepted run. Users can mark any answer useful or not useful, with a reason; that "
    "feedback is shown here beside the automated scores. Conversations are kept only in "
    "redacted form and purged after a set period (`govchat purge`). Operators can change "
    "guardrail definitions and prompts only through versioned files, which every answer records."
)
STATIC_LIMITATIONS = [
    "Answers follow the guidance as captured in the indexed snapshot; figures in it may be out "
    "of date (the bundled snapshot is mostly from 2024 or older).",
    "The default answer model is small (runs on a CPU): it can leave out facts the sources "
    "contain, or misread a scenario; the output checks remove figures it invents, but not every "
    "wrong statement.",
    "It cannot see anyone's own records or circumstances and does not give legal, tax or "
    "financial advice.",
    "English only: questions in other languages are referred elsewhere, not answered.",
    "The evaluation sets are small and were written by the team; results on unseen questions "
    "will be lower. Small route groups move by many points when one case changes.",
    "Automated answer scores are proxies: key facts are matched by embedding similarity and "
    "numbers, which can miss a correct paraphrase or credit a near miss.",
]


def system_card(
    config: dict[str, Any], summary: dict[str, Any], threshold_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The card's content from the run configuration and its results."""
    from evaluation.components import definition_versions

    models = config.get("models") or {}
    corpus = config.get("corpus") or {}
    judge = models.get("judge")
    failing = [r for r in threshold_rows if r["status"] == "fail"]
    limitations = list(STATIC_LIMITATIONS)
    if failing:
        limitations.insert(
            0,
            "Targets not met in this run: "
            + "; ".join(f"{r['why'] or r['metric']} ({r['metric']})" for r in failing),
        )
    unmeasured = [r["metric"] for r in threshold_rows if r["status"] == "not measured"]
    if unmeasured:
        limitations.append("Not measured in this run: " + ", ".join(unmeasured) + ".")
    data = (
        f"GOV.UK pages from {corpus.get('source', 'the configured source')} "
        f"(Crown copyright, Open Government Licence v3.0): {corpus.get('pages', '?')} pages in "
        f"{corpus.get('chunks', '?')} sections; newest page date "
        f"{corpus.get('newest_page_date') or 'unknown'}; indexed "
        f"{corpus.get('last_indexed_at') or 'unknown'}; corpus fingerprint "
        f"{corpus.get('fingerprint', '?')}."
    )
    return {
        "purpose": PURPOSE,
        "how_it_works": HOW_IT_WORKS,
        "models": {
            "Answer and follow-up rewriting model": models.get("llm"),
            "Embedding model (search, routing, evaluation)": models.get("embedding"),
            "Evaluation judge": f"{judge['model']} ({judge['framework']})" if judge else None,
        },
        "prompts": definition_versions()["prompts"],
        "guardrails": config.get("guardrails") or {},
        "guardrails_text": GUARDRAILS_TEXT,
        "data": data,
        "oversight": OVERSIGHT,
        "limitations": limitations,
    }
