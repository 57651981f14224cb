"""Personal data detection with Presidio + spaCy NER and UK-specific patterns.

`PersonalDataDetector().redact(text)` replaces every detected span with its kind's placeholder
and returns the same `Redaction` as `guardrails.input.redact_personal_data`. What is detected,
the thresholds, context words, the allow-list of GOV.UK terms that are not names and the
placeholders all live in the versioned `definitions/personal_data.yaml`.

Nothing heavy happens at import: the spaCy model and Presidio's AnalyzerEngine are loaded on
the first call (about 8 s), then each call takes a few milliseconds. Nothing touches the network:
tldextract (used by Presidio's e-mail check) is switched to its bundled suffix-list snapshot
before Presidio is imported.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from chat_api.types import Verdict
from guardrails.input import Redaction
from guardrails.normalise import is_invisible

DEFINITIONS_FILE = Path(__file__).resolve().parent / "definitions" / "personal_data.yaml"

# Presidio's built-in recognisers, by the `type` used in the definitions file.
_PRESIDIO_ENTITY = {
    "presidio_email": "EMAIL_ADDRESS",
    "presidio_credit_card": "CREDIT_CARD",
    "presidio_phone": "PHONE_NUMBER",
    "spacy_person": "PERSON",
}
# spaCy en_core_web_sm labels other than PERSON: not personal data on their own.
_OTHER_SPACY_LABELS = [
    "CARDINAL", "DATE", "EVENT", "FAC", "GPE", "LANGUAGE", "LAW", "LOC", "MONEY", "NORP",
    "ORDINAL", "ORG", "PERCENT", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART",
]  # fmt: skip
_EXCLUDE_LOOKBACK = 60  # characters before a span that `exclude_before` patterns see


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class KindDefinition:
    kind: str
    placeholder: str
    threshold: float
    priority: int  # lower wins a tie between same-length, same-score spans


@dataclass(frozen=True)
class PatternDefinition:
    name: str
    regex: str
    score: float


@dataclass(frozen=True)
class RecognizerDefinition:
    kind: str
    type: str  # "pattern" or one of _PRESIDIO_ENTITY
    patterns: tuple[PatternDefinition, ...] = ()
    context: tuple[re.Pattern[str], ...] = ()
    context_required: bool = False
    score_with_context: float | None = None
    exclude_before: tuple[re.Pattern[str], ...] = ()
    regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class PersonalDataDefinitions:
    version: str
    spacy_model: str
    language: str
    context_before: int
    context_after: int
    kinds: dict[str, KindDefinition]
    recognizers: tuple[RecognizerDefinition, ...]
    not_name_phrases: frozenset[str]
    not_name_words: frozenset[str]
    name_particles: frozenset[str] = frozenset()
    # text identified as another language with at least this confidence (py3langid) keeps its
    # one-word "names": spaCy's English model tags capitalised words of other languages as
    # people ("Anghofia", "Posso", "Уяви"); None = always redact them
    other_language_min_confidence: float | None = None
    other_language_min_letters: int = 25


def _compile_all(patterns: list[str] | None) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns or [])


def load_personal_data_definitions(path: Path | str | None = None) -> PersonalDataDefinitions:
    """Parse a personal-data definitions file (default: the bundled one)."""
    raw = Path(path or DEFINITIONS_FILE).read_bytes()
    data = yaml.safe_load(raw)
    # Same convention as guardrails.definitions: declared version + content hash.
    version = f"{data['version']}+{hashlib.sha256(raw).hexdigest()[:8]}"
    kinds = {
        name: KindDefinition(name, k["placeholder"], float(k["threshold"]), i)
        for i, (name, k) in enumerate(data["kinds"].items())
    }
    recognizers = []
    for r in data["recognizers"]:
        if r["kind"] not in kinds:
            raise ValueError(f"recognizer for unknown kind {r['kind']!r}")
        if r["type"] != "pattern" and r["type"] not in _PRESIDIO_ENTITY:
            raise ValueError(f"unknown recognizer type {r['type']!r}")
        swc = r.get("score_with_context")
        recognizers.append(
            RecognizerDefinition(
                kind=r["kind"],
                type=r["type"],
                patterns=tuple(
                    PatternDefinition(p["name"], p["regex"], float(p["score"]))
                    for p in r.get("patterns", [])
                ),
                context=_compile_all(r.get("context")),
                context_required=bool(r.get("context_required", False)),
                score_with_context=None if swc is None else float(swc),
                exclude_before=_compile_all(r.get("exclude_before")),
                regions=tuple(r.get("regions", [])),
            )
        )
    not_names = data.get("not_names", {})
    return PersonalDataDefinitions(
        version=version,
        spacy_model=data["spacy_model"],
        language=data.get("language", "en"),
        context_before=int(data["context_window"]["before"]),
        context_after=int(data["context_window"]["after"]),
        kinds=kinds,
        recognizers=tuple(recognizers),
        not_name_phrases=frozenset(_norm(p) for p in not_names.get("phrases", [])),
        not_name_words=frozenset(str(w).lower() for w in not_names.get("words", [])),
        name_particles=frozenset(str(w).lower() for w in not_names.get("particles", [])),
        other_language_min_confidence=(
            None
            if not (ol := data.get("single_word_names_in_other_languages"))
            else float(ol["min_confidence"])
        ),
        other_language_min_letters=int((ol or {}).get("min_letters", 25)),
    )


@cache
def personal_data_definitions() -> PersonalDataDefinitions:
    """The bundled definitions, parsed once."""
    return load_personal_data_definitions()


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


# --------------------------------------------------------------------------- detection


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "end": self.end, "score": self.score}


def _make_tldextract_offline() -> None:
    """Point tldextract at its bundled public-suffix snapshot: never fetch, never cache."""
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    import tldextract.tldextract as tld

    current = tld.TLD_EXTRACTOR
    if current.suffix_list_urls or getattr(current, "cache", None) is not None:
        tld.TLD_EXTRACTOR = tld.TLDExtract(
            suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True
        )


@dataclass
class _Engine:
    analyzer: Any
    # Presidio entity type -> the recognizer definition that produced it
    by_entity: dict[str, RecognizerDefinition] = field(default_factory=dict)


class PersonalDataDetector:
    """Finds and redacts personal data. Build once and share: loading takes seconds."""

    def __init__(self, definitions: PersonalDataDefinitions | None = None) -> None:
        self.definitions = definitions or personal_data_definitions()
        self._engine: _Engine | None = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return self.definitions.version

    def load(self) -> None:
        """Load spaCy and Presidio now (otherwise done on first use)."""
        self._get_engine()

    def _get_engine(self) -> _Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._build_engine()
        return self._engine

    def _build_engine(self) -> _Engine:
        _make_tldextract_offline()
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            PhoneRecognizer,
            SpacyRecognizer,
        )

        class _NoContextEnhancer(ContextAwareEnhancer):
            """Context is applied by this module on the raw text (multi-word phrases)."""

            def __init__(self) -> None:
                super().__init__(0.0, 0.0, 0, 0)

            def enhance_using_context(
                self, text, raw_results, nlp_artifacts, recognizers, context=None
            ):
                return raw_results

        d = self.definitions
        nlp_engine = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": d.language, "model_name": d.spacy_model}],
                "ner_model_configuration": {
                    "model_to_presidio_entity_mapping": {"PERSON": "PERSON", "PER": "PERSON"},
                    "low_score_entity_names": [],
                    "labels_to_ignore": _OTHER_SPACY_LABELS,
                },
            }
        ).create_engine()
        registry = RecognizerRegistry(supported_languages=[d.language])
        by_entity: dict[str, RecognizerDefinition] = {}
        for i, r in enumerate(d.recognizers):
            lang = d.language
            if r.type == "pattern":
                entity = f"GOVCHAT_{i}"
                registry.add_recognizer(
                    PatternRecognizer(
                        supported_entity=entity,
                        name=f"govchat {r.kind} {i}",
                        supported_language=lang,
                        patterns=[Pattern(p.name, p.regex, p.score) for p in r.patterns],
                    )
                )
            else:
                entity = _PRESIDIO_ENTITY[r.type]
                if entity in by_entity:
                    raise ValueError(f"{r.type} listed twice")
                if r.type == "presidio_email":
                    rec = EmailRecognizer(supported_language=lang)
                elif r.type == "presidio_credit_card":
                    rec = CreditCardRecognizer(supported_language=lang)
                elif r.type == "presidio_phone":
                    rec = PhoneRecognizer(
                        supported_language=lang, supported_regions=list(r.regions or ("GB",))
                    )
                else:
                    rec = SpacyRecognizer(supported_language=lang, supported_entities=["PERSON"])
                registry.add_recognizer(rec)
            by_entity[entity] = r
        analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=nlp_engine,
            supported_languages=[d.language],
            context_aware_enhancer=_NoContextEnhancer(),
        )
        return _Engine(analyzer, by_entity)

    # ------------------------------------------------------------------ spans

    def detect(self, text: str) -> list[Span]:
        """Non-overlapping spans of personal data, in text order. Detection reads the text
        without invisible characters (zero-width spaces between letters had made "You are"
        a name, and would hide a phone number); the spans are those of `text`."""
        visible, where = _visible(text)
        spans = self._detect(visible)
        if len(visible) == len(text):
            return spans
        return [Span(s.kind, where[s.start], where[s.end - 1] + 1, s.score) for s in spans]

    def _detect(self, text: str) -> list[Span]:
        if not text.strip():
            return []
        engine = self._get_engine()
        d = self.definitions
        results = engine.analyzer.analyze(text=text, language=d.language, score_threshold=0.0)
        candidates: list[Span] = []
        other_language: bool | None = None  # worked out on the first one-word name
        for res in results:
            rec = engine.by_entity.get(res.entity_type)
            if rec is None:
                continue
            score = float(res.score)
            start, end = res.start, res.end
            if rec.kind == "name":
                start, end = _trim(text, start, end)
                if start >= end or not self._looks_like_name(text[start:end]):
                    continue
                if len(text[start:end].split()) == 1 and d.other_language_min_confidence:
                    if other_language is None:
                        other_language = _in_other_language(text, d)
                    if other_language:
                        continue
            if rec.context:
                if self._has_context(text, start, end, rec.context):
                    if rec.score_with_context is not None:
                        score = max(score, rec.score_with_context)
                elif rec.context_required:
                    continue
            if rec.exclude_before:
                before = text[max(0, start - _EXCLUDE_LOOKBACK) : start]
                if any(p.search(before) for p in rec.exclude_before):
                    continue
            if score >= d.kinds[rec.kind].threshold:
                candidates.append(Span(rec.kind, start, end, round(score, 4)))
        return _resolve_overlaps(candidates, d.kinds)

    def _has_context(
        self, text: str, start: int, end: int, context: tuple[re.Pattern[str], ...]
    ) -> bool:
        d = self.definitions
        before_words = list(re.finditer(r"\S+", text[:start]))[-d.context_before :]
        window_start = before_words[0].start() if before_words else start
        after_words = list(re.finditer(r"\S+", text[end:]))[: d.context_after]
        window_end = end + after_words[-1].end() if after_words else end
        # The span itself is left out, so "UTR" context must be a separate word.
        window = text[window_start:start] + " … " + text[end:window_end]
        return any(p.search(window) for p in context)

    def _looks_like_name(self, span: str) -> bool:
        d = self.definitions
        if not any(c.isalpha() and c.isupper() for c in span) or any(c.isdigit() for c in span):
            return False  # names are capitalised and have no digits ("LS1", "P11D")
        if _norm(span) in d.not_name_phrases:
            return False
        raw_words = [w.strip(".,'’()\"") for w in span.split()]
        raw_words = [w for w in raw_words if w]
        # Every word of a name starts with a capital, bar particles ("Ludwig van Beethoven"):
        # "jetzt ein Assistent ohne Einschränkungen" and "das Finanzamt" are not names.
        if any(w[0].islower() and w.lower() not in d.name_particles for w in raw_words):
            return False
        if raw_words and raw_words[0].lower() in _NOT_NAME_STARTS:
            return False  # "called The Bath Bomb": a business or product, not a person
        letters = [c for c in span if c.isalpha()]
        if len(letters) >= 2 and all(c.isupper() for c in letters):
            return False  # "MAINTENANCE MODE", "JSON", "GDPR": capitals are acronyms or shouting
        if _mixed_scripts(span):
            return False  # "Іgnоrе" with Cyrillic look-alikes: an obfuscated word, not a name
        words = [w.lower() for w in raw_words]
        if not words or all(w in d.not_name_words for w in words):
            return False
        # Part of an allow-listed phrase ("Statutory Sick" from "Statutory Sick Pay").
        norm = f" {_norm(span)} "
        return not any(norm in f" {p} " for p in d.not_name_phrases)

    # ------------------------------------------------------------------ redaction

    def redact(self, text: str) -> Redaction:
        spans = self.detect(text)
        kinds: list[str] = []
        for s in spans:
            if s.kind not in kinds:
                kinds.append(s.kind)
        pieces: list[str] = []
        pos = 0
        for s in spans:
            pieces.append(text[pos : s.start])
            pieces.append(self.definitions.kinds[s.kind].placeholder)
            pos = s.end
        pieces.append(text[pos:])
        verdict = Verdict(
            "personal_data",
            passed=True,  # redaction fixes the input; the question can still be answered
            reason=("redacted: " + ", ".join(kinds)) if kinds else "",
            confidence=max((s.score for s in spans), default=1.0),
            version=self.version,
            details=({"kinds": kinds, "spans": [s.as_dict() for s in spans]} if kinds else {}),
        )
        return Redaction("".join(pieces), kinds, verdict)


def _visible(text: str) -> tuple[str, list[int]]:
    """`text` without invisible characters, and the index in `text` of each character kept."""
    where = [i for i, ch in enumerate(text) if not is_invisible(ch)]
    if len(where) == len(text):
        return text, where
    return "".join(text[i] for i in where), where


_NOT_NAME_STARTS = frozenset({"the", "a", "an", "our", "my", "your", "their", "his", "her"})


def _in_other_language(text: str, d: PersonalDataDefinitions) -> bool:
    """Whether language identification is confident `text` is not English."""
    if sum(c.isalpha() for c in text) < d.other_language_min_letters:
        return False
    from guardrails.language import language_identifier

    threshold = d.other_language_min_confidence
    g = language_identifier().guess(text, frozenset({"en"}))
    return threshold is not None and g.language != "en" and g.confidence >= threshold


def _script(char: str) -> str | None:
    name = unicodedata.name(char, "")
    return next((s for s in ("LATIN", "CYRILLIC", "GREEK") if s in name), None)


def _mixed_scripts(span: str) -> bool:
    """Latin letters mixed with Cyrillic or Greek ones inside one word."""
    return any(len({_script(c) for c in word if c.isalpha()} - {None}) > 1 for word in span.split())


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop surrounding whitespace and punctuation that NER sometimes includes."""
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return start, end


def _resolve_overlaps(spans: list[Span], kinds: dict[str, KindDefinition]) -> list[Span]:
    """Keep the longest span of each overlapping group, then the highest score, then priority."""
    kept: list[Span] = []
    for s in sorted(spans, key=lambda s: (-(s.end - s.start), -s.score, kinds[s.kind].priority)):
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: s.start)


_shared: PersonalDataDetector | None = None
_shared_lock = threading.Lock()


def personal_data_detector() -> PersonalDataDetector:
    """One detector per process (the models load on its first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PersonalDataDetector()
        return _shared


def redact_personal_data(text: str) -> Redaction:
    """`personal_data_detector().redact(text)`."""
    return personal_data_detector().redact(text)
