"""Output guardrails that always run offline: links and figures must come from the sources."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chat_api.types import Verdict
from guardrails.definitions import OutputRules, first_match_verdict, output_rules

_MD_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*)\)")
_BARE_URL = re.compile(r"\b(?:https?://|www\.)[^\s)\]>]+", re.IGNORECASE)

# Figures worth checking: money, percentages, numbers (with decimals/commas), ordinals.
_FIGURE = re.compile(
    r"£\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:million|billion|m|bn|k)\b)?"
    r"|\d[\d,]*(?:\.\d+)?\s?(?:%|per\s?cent)"
    r"|\b\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th)?\b",
    re.IGNORECASE,
)
_NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "fourteen": "14",
    "twenty": "20",
    "thirty": "30",
    "fifty": "50",
    "hundred": "100",
}


@dataclass
class LinkCheck:
    markdown: str
    kept: list[str]
    dropped: list[str]


def ground_links(markdown: str, token_urls: dict[str, str], allowed: set[str]) -> LinkCheck:
    """Map link tokens to real URLs; unwrap any link whose target is not a known source URL."""
    kept: list[str] = []
    dropped: list[str] = []

    def replace(m: re.Match[str]) -> str:
        label, target = m.group(1), m.group(2)
        url = token_urls.get(target, target)
        if url in allowed:
            kept.append(url)
            return f"[{label}]({url})"
        dropped.append(target)
        return label

    def drop_bare(m: re.Match[str]) -> str:
        url = m.group(0).rstrip(".,;:")
        if url in allowed:
            kept.append(url)
            return m.group(0)
        dropped.append(url)
        return m.group(0)[len(url) :]  # keep the sentence's punctuation

    # Bare URLs are checked only outside markdown links (whose targets were checked above).
    pieces, last = [], 0
    for m in _MD_LINK.finditer(markdown):
        pieces.append(_BARE_URL.sub(drop_bare, markdown[last : m.start()]))
        pieces.append(replace(m))
        last = m.end()
    pieces.append(_BARE_URL.sub(drop_bare, markdown[last:]))
    text = "".join(pieces)
    # Bare link tokens the model wrote as text ("see link_2") carry no meaning for a reader.
    text = re.sub(r"\(?\blink_\d+\b\)?", "", text)
    return LinkCheck(re.sub(r"[ \t]{2,}", " ", text).strip(), kept, dropped)


def _normalise_figure(f: str) -> str:
    f = f.lower().replace(",", "").replace(" ", "").replace("percent", "%").replace("per cent", "%")
    f = re.sub(r"(st|nd|rd|th)$", "", f)
    return f


def figures_in(text: str) -> set[str]:
    return {_normalise_figure(m.group(0)) for m in _FIGURE.finditer(text)}


def ungrounded_figures(answer: str, sources_text: str) -> list[str]:
    """Figures in the answer that appear nowhere in the sources it used."""
    source_figures = figures_in(sources_text)
    source_numbers = {re.sub(r"[^\d.]", "", f) for f in source_figures}
    for word, digit in _NUMBER_WORDS.items():
        if re.search(rf"\b{word}\b", sources_text, re.IGNORECASE):
            source_numbers.add(digit)
    missing = []
    for fig in sorted(figures_in(answer)):
        bare = re.sub(r"[^\d.]", "", fig)
        if fig in source_figures or bare in source_numbers:
            continue
        missing.append(fig)
    return missing


# ---------------------------------------------------------------------------- sentences

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z£(\[*-])")


def answer_units(markdown: str) -> list[str]:
    """Sentences and list items of an answer, in order (markdown kept)."""
    units: list[str] = []
    for line in markdown.splitlines():
        if not line.strip():
            continue
        units.extend(u for u in _SENTENCE_SPLIT.split(line) if u.strip())
    return units


@dataclass
class GroundedAnswer:
    markdown: str  # the answer with unsupported sentences removed
    removed: list[str] = field(default_factory=list)  # the sentences removed
    missing: list[str] = field(default_factory=list)  # the figures that were not in the sources


def remove_ungrounded_sentences(markdown: str, evidence: str) -> GroundedAnswer:
    """Drop each sentence or list item whose figures do not all appear in the evidence."""
    kept_lines: list[str] = []
    removed: list[str] = []
    missing: list[str] = []
    for line in markdown.splitlines():
        kept = []
        for unit in (u for u in _SENTENCE_SPLIT.split(line) if u.strip()):
            bad = ungrounded_figures(unit, evidence)
            if bad:
                removed.append(unit.strip())
                missing.extend(f for f in bad if f not in missing)
            else:
                kept.append(unit)
        if kept or not line.strip():  # keep paragraph breaks
            kept_lines.append(" ".join(kept))
    text = "\n".join(kept_lines).strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    return GroundedAnswer(text, removed, missing)


def has_substance(markdown: str) -> bool:
    """Whether what is left still says something (not only a lead-in like "You can:")."""
    words = re.findall(r"[A-Za-z£0-9]+", markdown)
    return len(words) >= 4 and not markdown.rstrip().endswith(":")


# ---------------------------------------------------------------------------- content checks


def check_advice_opinion(markdown: str, rules: OutputRules | None = None) -> Verdict:
    rules = rules or output_rules()
    return first_match_verdict(
        "advice_opinion", rules.advice_opinion, markdown, rules.version, "advice or opinion"
    )


def check_forbidden_terms(markdown: str, rules: OutputRules | None = None) -> Verdict:
    rules = rules or output_rules()
    lower = markdown.lower()
    hits = [t for t in rules.forbidden_terms if re.search(rf"\b{re.escape(t)}\b", lower)]
    return Verdict(
        "forbidden_terms",
        not hits,
        f"forbidden term(s): {', '.join(hits)}" if hits else "",
        version=rules.version,
    )


def check_personal_data_in_answer(markdown: str) -> Verdict:
    """Answers quote GOV.UK, which holds no one's personal details: any found is a leak."""
    from guardrails.input import redact_personal_data

    found = redact_personal_data(markdown)
    return Verdict(
        "answer_personal_data",
        not found.kinds,
        f"contains: {', '.join(found.kinds)}" if found.kinds else "",
        version=found.verdict.version,
    )
