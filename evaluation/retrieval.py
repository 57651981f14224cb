"""Retrieval metrics over the evaluation datasets: which expected sources made it into the top k.

Datasets (DESIGN.md §6): `rag_qa.jsonl` rows give `question` and `expected_sources`;
`conversations.jsonl` rows give `standalone_last_question` (the condensed follow-up, which is
what retrieval sees) and `expected_sources`. Expected sources are page or guide-part paths with
no `#fragment`: `/employers-sick-pay` (a whole guide, or its first part), or
`/employers-sick-pay/entitlement` (one part of it). Retrieved chunks carry an `exact_path`
(`base_path[/part-slug]#heading-id`) and the `base_path` of the page they belong to.

Three ways a retrieved chunk can match an expected source, from strict to lenient:

- **exact**: the chunk's page path (`exact_path` without the fragment) equals the expected path.
  The right guide part, or the right single page.
- **source** (the DESIGN §6 rule, the contract of `govchat eval`): exact, or the expected path is
  the chunk's `base_path`. An expected guide (`/employers-sick-pay`) accepts any of its parts;
  an expected part (`/employers-sick-pay/entitlement`) still needs that part.
- **page**: the chunk comes from the same page as the expected source, i.e. the expected path's
  base path equals the chunk's `base_path`. Any part of the same guide counts (the datasets'
  README: "another part of the same guide may deserve partial credit").

The expected path's base path is looked up in `base_of` (page path -> base path, built from the
index) when given; otherwise it is inferred: the expected path is the chunk's `base_path` or
lies one or more segments below it. The inference is exact for guides, but would wrongly credit
a page published under another page's path (an `html_publication` below its publication), so
callers that have the index should pass `base_of`.

Per case, for each k and each matching: `hit@k` (some expected source is matched in the top k),
`recall@k` (the share of expected sources matched in the top k; each expected source counts
once however many chunks match it) and `rr` (1 / rank of the first matching chunk in the list
scored, 0 if none), whose mean is the MRR at the largest k.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any, Literal

Matching = Literal["exact", "source", "page"]
MATCHINGS: tuple[Matching, ...] = ("exact", "source", "page")
DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10)

Retrieved = tuple[str, str]  # (exact_path, base_path), best first


@dataclass(frozen=True)
class RetrievalCase:
    id: str
    dataset: str
    question: str
    expected_sources: tuple[str, ...]
    topic: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class ScoredCase:
    """One case's metrics: `metrics[matching][metric]`, e.g. `metrics["page"]["hit@5"]`."""

    case: RetrievalCase
    metrics: dict[str, dict[str, float]]


# ---------------------------------------------------------------------------- loading


def load_retrieval_cases(paths: Iterable[str | Path]) -> list[RetrievalCase]:
    """Cases with expected sources from RAG and conversation JSONL files, in file order.

    The dataset name is the file's stem. Rows without `expected_sources` (unanswerable and
    guardrail cases) are skipped; malformed rows raise ValueError naming file and line.
    """
    cases: list[RetrievalCase] = []
    for raw_path in paths:
        path = Path(raw_path)
        dataset = path.stem
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{where}: invalid JSON ({exc.msg})") from exc
                case = _case_from_row(row, dataset, where)
                if case is not None:
                    cases.append(case)
    return cases


def _case_from_row(row: Any, dataset: str, where: str) -> RetrievalCase | None:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    expected = row.get("expected_sources")
    if not expected:
        return None
    if not isinstance(expected, list) or not all(isinstance(e, str) and e for e in expected):
        raise ValueError(f"{where}: expected_sources must be a list of non-empty strings")
    case_id = row.get("id")
    if not isinstance(case_id, str) or not case_id:
        raise ValueError(f"{where}: missing id")
    conversation = "turns" in row or "standalone_last_question" in row
    field = "standalone_last_question" if conversation else "question"
    question = row.get(field)
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: missing {field}")
    return RetrievalCase(
        id=case_id,
        dataset=dataset,
        question=question,
        expected_sources=tuple(dict.fromkeys(normalise_path(e) for e in expected)),
        topic=row.get("topic"),
        kind=row.get("kind"),
    )


# ---------------------------------------------------------------------------- matching


def normalise_path(path: str) -> str:
    """A GOV.UK path from a path or URL: no scheme/host, query, or trailing slash."""
    path = path.strip()
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    path = path.split("?", 1)[0]
    return path.rstrip("/") or "/"


def page_path(exact_path: str) -> str:
    """The page (or guide part) path of a chunk: its exact path without the `#fragment`."""
    return normalise_path(exact_path.split("#", 1)[0])


def matches_exact(retrieved_exact_path: str, expected: str) -> bool:
    return page_path(retrieved_exact_path) == normalise_path(expected)


def matches_source(retrieved_exact_path: str, retrieved_base_path: str, expected: str) -> bool:
    """The DESIGN §6 rule: same page path, or the expected path is the chunk's base path."""
    expected = normalise_path(expected)
    return page_path(retrieved_exact_path) == expected or (
        bool(retrieved_base_path) and normalise_path(retrieved_base_path) == expected
    )


def matches_page(
    retrieved_exact_path: str,
    retrieved_base_path: str,
    expected: str,
    base_of: Mapping[str, str] | None = None,
) -> bool:
    """Same page: the expected source's base path is the chunk's base path (any part counts)."""
    if matches_source(retrieved_exact_path, retrieved_base_path, expected):
        return True
    if not retrieved_base_path:
        return False
    expected = normalise_path(expected)
    base = normalise_path(retrieved_base_path)
    if base_of is not None and expected in base_of:
        return normalise_path(base_of[expected]) == base
    return expected.startswith(base.rstrip("/") + "/")


def _matcher(matching: Matching, base_of: Mapping[str, str] | None):
    if matching == "exact":
        return lambda exact, _base, expected: matches_exact(exact, expected)
    if matching == "source":
        return matches_source
    return lambda exact, base, expected: matches_page(exact, base, expected, base_of)


# ---------------------------------------------------------------------------- scoring


def score_case(
    retrieved: Sequence[Retrieved],
    expected: Sequence[str],
    ks: Sequence[int] = DEFAULT_KS,
    base_of: Mapping[str, str] | None = None,
) -> dict[str, dict[str, float]]:
    """hit@k, recall@k and reciprocal rank of one ranked list, under every matching.

    `retrieved` is ranked best first and scored up to max(ks). With no expected sources every
    metric is 0.
    """
    if not ks or min(ks) < 1:
        raise ValueError("ks must be positive integers")
    ks = sorted(set(ks))
    ranked = list(retrieved)[: ks[-1]]
    wanted = list(dict.fromkeys(expected))
    out: dict[str, dict[str, float]] = {}
    for matching in MATCHINGS:
        match = _matcher(matching, base_of)
        # first_rank[i]: 1-based rank of the first chunk matching expected source i
        first_rank: list[int | None] = []
        for exp in wanted:
            rank = next(
                (r for r, (ex, base) in enumerate(ranked, start=1) if match(ex, base, exp)), None
            )
            first_rank.append(rank)
        found = [r for r in first_rank if r is not None]
        metrics: dict[str, float] = {}
        for k in ks:
            within = sum(1 for r in found if r <= k)
            metrics[f"hit@{k}"] = 1.0 if within else 0.0
            metrics[f"recall@{k}"] = within / len(wanted) if wanted else 0.0
        metrics["rr"] = 1.0 / min(found) if found else 0.0
        out[matching] = metrics
    return out


def aggregate(scored: Sequence[ScoredCase]) -> dict[str, Any]:
    """Mean of every metric, overall and by dataset, topic and kind (`mrr` = mean of `rr`).

    Cases without a topic or kind are grouped under `"-"`.
    """
    groups: dict[str, dict[str, list[ScoredCase]]] = {
        "by_dataset": defaultdict(list),
        "by_topic": defaultdict(list),
        "by_kind": defaultdict(list),
    }
    for sc in scored:
        groups["by_dataset"][sc.case.dataset].append(sc)
        groups["by_topic"][sc.case.topic or "-"].append(sc)
        groups["by_kind"][sc.case.kind or "-"].append(sc)
    return {
        "n": len(scored),
        "overall": _means(scored),
        **{
            name: {key: {"n": len(g), **_means(g)} for key, g in sorted(by.items())}
            for name, by in groups.items()
        },
    }


def _means(scored: Sequence[ScoredCase]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    if not scored:
        return out
    for matching in scored[0].metrics:
        names = scored[0].metrics[matching]
        out[matching] = {
            ("mrr" if name == "rr" else name): fmean(sc.metrics[matching][name] for sc in scored)
            for name in names
        }
    return out
