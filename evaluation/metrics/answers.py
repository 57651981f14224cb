"""Answer metrics that need no LLM (they run in CI): key-fact coverage, citation validity,
figure grounding, semantic similarity to the reference answer, answer length.

Texts are the messages the user saw. Link targets and bare URLs are removed before figures
are read (a GOV.UK search link carries the user's own words, and URLs carry digits).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from guardrails.output import answer_units, figures_in, ungrounded_figures

EmbedFn = Callable[[list[str]], np.ndarray]  # normalised vectors, one row per text

# Calibrated on the development set (docs/evaluation.md): a key fact counts as covered when an
# answer sentence (or two adjacent sentences) has cosine similarity >= FACT_THRESHOLD with it
# and every number in the fact appears in the answer. When the fact's numbers all appear, a
# looser FACT_THRESHOLD_WITH_NUMBERS is enough (the figure itself carries the meaning).
FACT_THRESHOLD = 0.55
FACT_THRESHOLD_WITH_NUMBERS = 0.45

_MD_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*)\)")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s)\]>]+", re.IGNORECASE)
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fourteen": "14",
    "twenty": "20", "thirty": "30", "fifty": "50", "hundred": "100",
}  # fmt: skip


def plain_text(markdown: str) -> str:
    """The message without link targets or URLs (labels kept)."""
    text = _MD_LINK.sub(lambda m: m.group(1), markdown)
    return _URL.sub("", text)


def links_in(markdown: str) -> list[str]:
    """Link targets and bare URLs in a message, in order, without duplicates."""
    found = [m.group(2) for m in _MD_LINK.finditer(markdown)]
    rest = _MD_LINK.sub("", markdown)
    found += [u.rstrip(".,;:") for u in _URL.findall(rest)]
    return list(dict.fromkeys(found))


def numbers_in(text: str) -> set[str]:
    """Bare numbers of the figures in `text` ("£1,200" -> "1200", "10%" -> "10"), plus number
    words ("three" -> "3")."""
    nums = {re.sub(r"[^\d.]", "", f).rstrip(".") for f in figures_in(text)}
    for word, digit in _NUMBER_WORDS.items():
        if re.search(rf"\b{word}\b", text, re.IGNORECASE):
            nums.add(digit)
    return {n for n in nums if n}


# ---------------------------------------------------------------------------- key facts


@dataclass
class FactMatch:
    fact: str
    covered: bool
    similarity: float
    best_sentence: str
    missing_numbers: list[str] = field(default_factory=list)


def _windows(units: Sequence[str]) -> list[str]:
    """Each sentence, and each pair of adjacent sentences (a fact may span two)."""
    return list(units) + [f"{a} {b}" for a, b in zip(units, units[1:], strict=False)]


def key_fact_coverage(
    answer: str,
    key_facts: Sequence[str],
    embed: EmbedFn,
    threshold: float = FACT_THRESHOLD,
    threshold_with_numbers: float = FACT_THRESHOLD_WITH_NUMBERS,
) -> dict[str, Any]:
    """The share of `key_facts` the answer states, matched by meaning and by number.

    A fact is covered when every number in it appears in the answer and some sentence (or pair
    of adjacent sentences) is close enough in meaning: cosine >= `threshold`, or
    >= `threshold_with_numbers` when the fact has numbers and they all appear. Returns
    `{"score", "covered", "total", "facts": [FactMatch...]}`; `score` is None with no facts.
    """
    if not key_facts:
        return {"score": None, "covered": 0, "total": 0, "facts": []}
    text = plain_text(answer)
    units = [u.strip() for u in answer_units(text) if u.strip()]
    answer_numbers = numbers_in(text)
    matches: list[FactMatch] = []
    if units:
        windows = _windows(units)
        vectors = embed(list(key_facts) + windows)
        sims = vectors[len(key_facts) :] @ vectors[: len(key_facts)].T  # windows x facts
    for i, fact in enumerate(key_facts):
        missing = sorted(numbers_in(fact) - answer_numbers)
        if not units:
            matches.append(FactMatch(fact, False, 0.0, "", missing))
            continue
        best = int(np.argmax(sims[:, i]))
        sim = float(sims[best, i])
        needed = threshold_with_numbers if numbers_in(fact) and not missing else threshold
        matches.append(FactMatch(fact, not missing and sim >= needed, sim, windows[best], missing))
    covered = sum(m.covered for m in matches)
    return {
        "score": covered / len(matches),
        "covered": covered,
        "total": len(matches),
        "facts": [asdict(m) for m in matches],
    }


# ---------------------------------------------------------------------------- citations


def citation_validity(
    cited_urls: Sequence[str], retrieved_urls: Iterable[str], in_index: dict[str, bool]
) -> dict[str, Any]:
    """Every cited link must have been retrieved for this turn and exist in the index.

    `cited_urls`: the sources shown and the links in the message; `retrieved_urls`: the URLs
    of the sections retrieved for the turn; `in_index`: URL -> whether the index holds it.
    `score` = valid / cited (None when nothing was cited); `invalid` lists each bad URL and why.
    """
    retrieved = set(retrieved_urls)
    invalid = []
    for url in dict.fromkeys(cited_urls):
        reasons = []
        if url not in retrieved:
            reasons.append("not retrieved")
        if not in_index.get(url, False):
            reasons.append("not in the index")
        if reasons:
            invalid.append({"url": url, "reason": " and ".join(reasons)})
    n = len(dict.fromkeys(cited_urls))
    return {
        "score": (n - len(invalid)) / n if n else None,
        "cited": n,
        "valid": n - len(invalid),
        "invalid": invalid,
    }


# ---------------------------------------------------------------------------- figures


def figure_grounding(answer: str, used_source_texts: Sequence[str]) -> dict[str, Any]:
    """Every figure in the answer must appear in a source the answer used.

    Reuses the output guardrail's figure reading (`guardrails.output`). `score` = grounded
    figures / figures (None when the answer states none); `ungrounded` lists the others.
    """
    text = plain_text(answer)
    figures = sorted(figures_in(text))
    missing = ungrounded_figures(text, "\n".join(used_source_texts)) if figures else []
    return {
        "score": (len(figures) - len(missing)) / len(figures) if figures else None,
        "figures": len(figures),
        "ungrounded": missing,
    }


def stated_figures(message: str, question: str = "") -> list[str]:
    """Figures a message states that the question did not already contain."""
    asked = numbers_in(question)
    out = []
    for fig in sorted(figures_in(plain_text(message))):
        bare = re.sub(r"[^\d.]", "", fig).rstrip(".")
        if bare and bare not in asked:
            out.append(fig)
    return out


# ---------------------------------------------------------------------------- similarity


def semantic_similarity(answer: str, reference: str, ragas_embeddings: Any) -> float | None:
    """ragas `SemanticSimilarity` (cosine of the two texts' embeddings) with local embeddings.

    None when either text is empty: an empty answer is not "similar", it is missing.
    """
    if not answer.strip() or not reference.strip():
        return None
    from evaluation.ragas_compat import prepare_ragas

    prepare_ragas()
    from ragas.metrics.collections import SemanticSimilarity

    metric = SemanticSimilarity(embeddings=ragas_embeddings)
    result = asyncio.run(metric.ascore(reference=reference, response=plain_text(answer)))
    return float(result.value)


def answer_length(answer: str) -> dict[str, int]:
    text = plain_text(answer)
    return {"words": len(re.findall(r"\S+", text)), "chars": len(text)}
