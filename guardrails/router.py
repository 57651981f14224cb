"""Question routing: decide whether a question is searched and answered, or gets a canned reply.

Layers (definitions and thresholds in ``definitions/routes.yaml``, versioned):

1. rules: input with no words (unclear), crisis phrasing (searched anywhere), whole-message
   greetings and acknowledgements (also ``input_rules.yaml``'s), questions about the user's own
   records (needs_account);
2. language identification (py3langid, model inside the wheel): non_english only with enough
   letters and words and a confident non-English top language (or mostly non-Latin script);
   Welsh gets a reply pointing to GOV.UK's Welsh content;
3. a logistic regression over all-MiniLM-L6-v2 embeddings of the example sentences, trained at
   first use and cached per process (and on disk when ``cache_dir`` is given). A refusal route
   wins only when it is confident and clearly ahead of "answer"; crisis wins on any lead, or
   when the nearest example is a crisis example.

Usage::

    router = QuestionRouter(embedder=retriever.embedder)  # nothing is loaded yet
    decision = router.route("How much is Statutory Sick Pay?")
    decision.route  # "answer"
    router.message(decision)  # canned reply for non-answer routes
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from chat_api.types import Verdict
from guardrails.definitions import DEFINITIONS_DIR, input_rules
from guardrails.language import LanguageIdentifier, language_identifier
from guardrails.normalise import normalise_for_detection

ROUTES = (
    "answer",
    "greeting",
    "acknowledgement",
    "off_topic",
    "harmful",
    "advice_opinion",
    "non_english",
    "crisis",
    "needs_account",
    "unclear",
)
REFUSALS = tuple(r for r in ROUTES if r != "answer")
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"

# Routes under which a redacted question is labelled "pii" when scored against a dataset.
PII_LABEL_ROUTES = ("answer", "needs_account")


def dataset_route(route: str, redacted: bool) -> str:
    """The label a finished turn gets when scored against a guardrails dataset (DESIGN §6).

    Datasets label a question `pii` when it asks something the service handles (it may still
    be answered, or get the "we cannot see your records" reply) and carries personal data that
    must be redacted. A question that was redacted and then answered or sent to the
    `needs_account` reply therefore scores as `pii`; any other route (jailbreak, harmful, crisis,
    off-topic, advice, non-English...) keeps its own, more specific label.
    """
    if redacted and route in PII_LABEL_ROUTES:
        return "pii"
    return route


# ---------------------------------------------------------------------------- definitions


def _read(name: str) -> tuple[dict[str, Any], str]:
    raw = (DEFINITIONS_DIR / name).read_bytes()
    data = yaml.safe_load(raw)
    return data, f"{data['version']}+{hashlib.sha256(raw).hexdigest()[:8]}"


def _compile(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


@dataclass(frozen=True)
class LanguageSettings:
    min_letters: int
    min_words: int
    min_confidence: float
    long_letters: int
    long_min_confidence: float
    max_english: float
    non_latin_min_share: float
    english_like: frozenset[str]
    welsh: str
    # close languages whose probabilities count together (langid splits id/ms, hr/bs/sr)
    related: tuple[frozenset[str], ...] = ()


@dataclass(frozen=True)
class RouteDefinitions:
    version: str
    min_probability: dict[str, float]
    margin_over_answer: dict[str, float]
    C: float
    crisis_nearest_similarity: float
    harmful_binary_min: float
    harmful_binary_C: float
    language: LanguageSettings
    rules: dict[str, tuple[re.Pattern[str], ...]]
    examples: dict[str, tuple[str, ...]]
    non_english_examples: tuple[str, ...]
    # the binary harmful classifier's own sentence embedding model (None: the router's)
    harmful_binary_embedder: str | None = None
    # its features are the router's embedding and its own side by side (else its own only)
    harmful_binary_concat: bool = False
    # more examples for the binary classifier only (harmful or not), from its example files
    harmful_binary_examples: tuple[tuple[str, str], ...] = ()
    # only the binary classifier refuses as harmful (the all-route classifier's harmful class
    # still shapes its other probabilities but never refuses on its own)
    harmful_binary_decides: bool = False
    # TF-IDF word n-grams of the text beside the embeddings, scaled by `weight` (None: none):
    # {"weight": 1.0, "ngram_range": (1, 2), "min_df": 2}
    harmful_binary_ngrams: dict[str, Any] | None = None
    # uncommon GOV.UK acronyms, written out for the classifiers ("whats a TEN" read as small talk)
    acronyms: dict[str, str] = field(default_factory=dict)

    def expand_acronyms(self, text: str) -> str:
        """`text` with each listed acronym (in capitals, as a word) followed by its meaning."""
        if not self.acronyms:
            return text
        return _acronym_pattern(tuple(self.acronyms)).sub(
            lambda m: f"{m.group(0)} ({self.acronyms[m.group(0)]})", text
        )

    def margin(self, route: str) -> float:
        return self.margin_over_answer.get(route, self.margin_over_answer.get("default", 0.25))


@cache
def _acronym_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, names)) + r")(?![\w-])")


def _example_files(names: list[str]) -> tuple[dict[str, list[str]], str]:
    """Example sentences from JSONL files (``{"text", "route", ...}`` a line) and their hash."""
    found: dict[str, list[str]] = {}
    digest = hashlib.sha256()
    for name in names:
        raw = (DEFINITIONS_DIR / name).read_bytes()
        digest.update(raw)
        for n, line in enumerate(raw.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("route") not in ROUTES or not isinstance(row.get("text"), str):
                raise ValueError(f"{name}:{n}: needs a text and a known route")
            found.setdefault(row["route"], []).append(row["text"])
    return found, digest.hexdigest()[:8]


@cache
def route_definitions() -> RouteDefinitions:
    data, version = _read("routes.yaml")
    th = data["thresholds"]
    binary = th.get("harmful_binary", {})
    lang = data["language"]
    examples = {k: [str(s) for s in v] for k, v in data["examples"].items()}
    unknown = set(examples) - set(ROUTES)
    if unknown:
        raise ValueError(f"routes.yaml: unknown routes {sorted(unknown)}")
    if data.get("example_files"):
        extra, extra_hash = _example_files(list(data["example_files"]))
        for route, sentences in extra.items():
            examples.setdefault(route, []).extend(sentences)
        version = f"{version}+ex{extra_hash}"
    binary_examples: list[tuple[str, str]] = []
    if binary.get("example_files"):
        more, more_hash = _example_files(list(binary["example_files"]))
        binary_examples = [(t, r) for r, texts in more.items() for t in texts]
        version = f"{version}+hx{more_hash}"
    return RouteDefinitions(
        version=version,
        min_probability={k: float(v) for k, v in th["min_probability"].items()},
        margin_over_answer={k: float(v) for k, v in th["margin_over_answer"].items()},
        C=float(th.get("C", 1.0)),
        crisis_nearest_similarity=float(th.get("crisis_nearest_similarity", 1.01)),
        harmful_binary_min=float(binary.get("min_probability", 1.01)),
        harmful_binary_C=float(binary.get("C", 1.0)),
        language=LanguageSettings(
            min_letters=int(lang["min_letters"]),
            min_words=int(lang["min_words"]),
            min_confidence=float(lang["min_confidence"]),
            long_letters=int(lang.get("long_letters", 10**9)),
            long_min_confidence=float(lang.get("long_min_confidence", 1.0)),
            max_english=float(lang["max_english"]),
            non_latin_min_share=float(lang["non_latin_min_share"]),
            english_like=frozenset(lang["english_like"]),
            welsh=str(lang["welsh"]),
            related=tuple(frozenset(str(c) for c in g) for g in lang.get("related", [])),
        ),
        rules={k: _compile(v) for k, v in data["rules"].items()},
        examples={k: tuple(v) for k, v in examples.items()},
        non_english_examples=tuple(str(s) for s in data.get("non_english_examples", [])),
        harmful_binary_embedder=binary.get("embedder"),
        harmful_binary_concat=bool(binary.get("concat_router_embedding", False)),
        harmful_binary_decides=bool(binary.get("decides_harmful", False)),
        harmful_binary_examples=tuple(binary_examples),
        harmful_binary_ngrams=_ngram_settings(binary.get("word_ngrams")),
        acronyms={str(k): str(v) for k, v in (data.get("acronyms") or {}).items()},
    )


def _ngram_settings(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    if not raw:
        return None
    low, high = (int(n) for n in raw.get("ngram_range", (1, 2)))
    return {
        "weight": float(raw.get("weight", 1.0)),
        "ngram_range": (low, high),
        "min_df": int(raw.get("min_df", 2)),
    }


@cache
def route_messages() -> tuple[dict[str, str], str]:
    """Canned replies per route (``route_messages.yaml``) and that file's version."""
    data, version = _read("route_messages.yaml")
    return {k: " ".join(v.split()) for k, v in data["messages"].items()}, version


# ---------------------------------------------------------------------------- decisions


@dataclass
class RouteDecision:
    route: str
    verdict: Verdict
    message_key: str = ""  # key in route_messages() (e.g. "non_english_welsh"); "" = route
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def answer(self) -> bool:
        return self.route == "answer"


# ---------------------------------------------------------------------------- classifier


@dataclass
class _Model:
    classes: list[str]
    clf: Any  # sklearn LogisticRegression over every route
    example_vectors: np.ndarray
    example_labels: np.ndarray
    harmful: _Binary | None = None  # harmful vs every other route
    harmful_embedder: Any = None  # embeds text for `harmful` (None: the router's embedder)


_MODELS: dict[tuple[str, str], _Model] = {}
_MODELS_LOCK = threading.Lock()
# binary harmful classifiers on their own embedder, by (embedder name, definitions version):
# independent of the router's embedder instance, so trained once per process
_HARMFUL: dict[tuple[str, str], Any] = {}
_HARMFUL_LOCK = threading.Lock()


def _example_vectors(
    texts: list[str], embedder: Any, cache_dir: Path | None, embedder_name: str
) -> np.ndarray:
    """The examples' embeddings, kept on disk by model name and text when `cache_dir`."""
    from retrieval.embeddings import embed_with_store

    return embed_with_store(embedder, texts, cache_dir, embedder_name)


@dataclass
class _Binary:
    """The binary harmful classifier: logistic regression over sentence embeddings, and over
    TF-IDF word n-grams beside them when the definitions ask for them. The n-grams see what an
    embedding blurs: "fabricated", "inflate", "frame it as" against "put it right", "report"."""

    clf: Any
    vectorizer: Any = None
    weight: float = 1.0

    def features(self, dense: np.ndarray, texts: list[str]) -> Any:
        if self.vectorizer is None:
            return dense
        from scipy import sparse

        words = self.vectorizer.transform(texts) * self.weight
        return sparse.hstack([sparse.csr_matrix(dense), words]).tocsr()

    def probabilities(self, dense: np.ndarray, texts: list[str]) -> np.ndarray:
        return self.clf.predict_proba(self.features(dense, texts))[:, 1]


def _fit_binary(
    defs: RouteDefinitions, dense: np.ndarray, texts: list[str], y: np.ndarray
) -> _Binary:
    from sklearn.linear_model import LogisticRegression

    vectorizer = None
    ngrams = defs.harmful_binary_ngrams
    if ngrams:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(
            ngram_range=ngrams["ngram_range"], min_df=ngrams["min_df"], sublinear_tf=True
        ).fit(texts)
    binary = _Binary(None, vectorizer, ngrams["weight"] if ngrams else 1.0)
    binary.clf = LogisticRegression(
        C=defs.harmful_binary_C, max_iter=5000, class_weight="balanced"
    ).fit(binary.features(dense, texts), y)
    return binary


def _train(
    defs: RouteDefinitions,
    embedder: Any,
    cache_dir: Path | None,
    embedder_name: str,
    harmful_embedder: Any = None,
) -> _Model:
    from sklearn.linear_model import LogisticRegression

    texts: list[str] = []
    labels: list[str] = []
    for route, sentences in defs.examples.items():
        texts.extend(sentences)
        labels.extend([route] * len(sentences))
    vectors = _example_vectors(texts, embedder, cache_dir, embedder_name)
    y = np.array(labels)
    clf = LogisticRegression(C=defs.C, max_iter=2000, class_weight="balanced")
    clf.fit(vectors, y)
    harmful = None
    if "harmful" in defs.examples and defs.harmful_binary_min <= 1.0:
        more = defs.harmful_binary_examples
        btexts = texts + [t for t, _ in more]
        is_harmful = np.concatenate(
            [(y == "harmful"), np.array([r == "harmful" for _, r in more], dtype=bool)]
        ).astype(int)
        bvectors = vectors
        if more:
            extra = _example_vectors([t for t, _ in more], embedder, cache_dir, embedder_name)
            bvectors = np.vstack([vectors, extra])
        if harmful_embedder is None:
            harmful = _fit_binary(defs, bvectors, btexts, is_harmful)
        else:
            key = (harmful_embedder.name, defs.version)
            if defs.harmful_binary_concat:
                key += (embedder_name,)
            with _HARMFUL_LOCK:
                harmful = _HARMFUL.get(key)
                if harmful is None:
                    hv = _example_vectors(
                        btexts, harmful_embedder, cache_dir or default_cache_dir(), key[0]
                    )
                    if defs.harmful_binary_concat:
                        hv = np.hstack([bvectors, hv])
                    harmful = _HARMFUL[key] = _fit_binary(defs, hv, btexts, is_harmful)
    return _Model([str(c) for c in clf.classes_], clf, vectors, y, harmful, harmful_embedder)


# ---------------------------------------------------------------------------- router


def default_cache_dir() -> Path:
    """Where example embeddings are cached (`govchat.cache`)."""
    from govchat.cache import cache_dir

    return cache_dir("router")


class QuestionRouter:
    """Routes a (redacted) question. Nothing is loaded until the first question that needs it."""

    name = "route"

    def __init__(
        self,
        embedder: Any | None = None,
        *,
        embedder_name: str | None = None,
        definitions: RouteDefinitions | None = None,
        cache_dir: Path | str | None = None,
        language_id: bool = True,
    ) -> None:
        self._embedder = embedder
        self._embedder_name = embedder_name or getattr(embedder, "name", None) or DEFAULT_EMBEDDER
        self.definitions = definitions or route_definitions()
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._language: LanguageIdentifier | None = language_identifier() if language_id else None
        self._lock = threading.Lock()

    # -- lazily loaded parts

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    from retrieval.embeddings import load_embedder

                    self._embedder = load_embedder(self._embedder_name)
        return self._embedder

    def _harmful_embedder(self) -> Any:
        """The binary harmful classifier's embedding model, when the definitions name one other
        than the router's (loaded once per process and name)."""
        name = self.definitions.harmful_binary_embedder
        if not name or name.lower() == self._embedder_name.lower():
            return None
        from retrieval.embeddings import shared_embedder

        return shared_embedder(name)

    def _model(self) -> _Model:
        key = (f"{self._embedder_name}@{id(self.embedder)}", self.definitions.version)
        model = _MODELS.get(key)
        if model is None:
            with _MODELS_LOCK:
                model = _MODELS.get(key)
                if model is None:
                    model = _train(
                        self.definitions,
                        self.embedder,
                        self.cache_dir,
                        self._embedder_name,
                        harmful_embedder=self._harmful_embedder(),
                    )
                    _MODELS[key] = model
        return model

    def warm_up(self) -> None:
        """Load the embedder, train the classifier and load the language model now."""
        self._model()
        if self._language:
            self._language.guess("warm up", self.definitions.language.english_like)

    # -- routing

    def _decision(
        self, route: str, layer: str, reason: str, confidence: float = 1.0, **details: Any
    ) -> RouteDecision:
        verdict = Verdict(
            "route",
            passed=route == "answer",
            reason=f"{layer}: {reason}" if reason else layer,
            confidence=float(confidence),
            version=self.definitions.version,
            details={"route": route, "layer": layer, **details},
        )
        return RouteDecision(route, verdict, message_key=details.get("message_key", ""))

    def _rules(self, text: str) -> RouteDecision | None:
        rules = self.definitions.rules
        stripped = text.strip()
        if not any(c.isalpha() for c in stripped):
            return self._decision("unclear", "rule", "no words")
        for pattern in rules.get("crisis", ()):
            m = pattern.search(stripped)
            if m:
                return self._decision("crisis", "rule", f"matched {m.group(0)!r}")
        for pattern in rules.get("harmful", ()):
            m = pattern.search(stripped)
            if m:
                return self._decision("harmful", "rule", f"matched {m.group(0)!r}")
        base = input_rules()
        for route in ("greeting", "acknowledgement"):
            patterns = (*getattr(base, route), *rules.get(route, ()))
            if any(p.match(stripped) for p in patterns):
                return self._decision(route, "rule", "whole message")
        if any(p.match(stripped) for p in rules.get("unclear", ())):
            return self._decision("unclear", "rule", "whole message")
        for pattern in rules.get("needs_account", ()):
            m = pattern.search(stripped)
            if m:
                return self._decision("needs_account", "rule", f"matched {m.group(0)!r}")
        return None

    def is_non_english(self, text: str) -> bool:
        """Whether routing would give `text` the non-English reply on language alone."""
        return self._language_route(text) is not None

    def _language_route(self, text: str) -> RouteDecision | None:
        if self._language is None:
            return None
        s = self.definitions.language
        g = self._language.guess(text, s.english_like, s.related)
        details = {"language": g.language, "language_confidence": round(g.confidence, 4)}
        if g.letters >= 3 and g.non_latin_share >= s.non_latin_min_share:
            return self._decision(
                "non_english",
                "language",
                f"{g.non_latin_share:.0%} non-Latin letters ({g.language})",
                g.confidence,
                **details,
            )
        if (
            g.letters >= s.min_letters
            and g.words >= s.min_words
            and g.language not in s.english_like
            and (
                g.confidence >= s.min_confidence
                or (g.letters >= s.long_letters and g.confidence >= s.long_min_confidence)
            )
            and g.english <= s.max_english
        ):
            key = "non_english_welsh" if g.language == s.welsh else ""
            return self._decision(
                "non_english",
                "language",
                f"{g.language} p={g.confidence:.2f}",
                g.confidence,
                message_key=key,
                **details,
            )
        return None

    def _classify(self, text: str) -> RouteDecision:
        defs = self.definitions
        model = self._model()
        text = defs.expand_acronyms(text)
        vec = np.asarray(self.embedder.embed([text]), dtype=np.float32)
        probs = dict(zip(model.classes, model.clf.predict_proba(vec)[0].tolist(), strict=True))
        sims = model.example_vectors @ vec[0]
        nearest = int(np.argmax(sims))
        nn_label, nn_sim = str(model.example_labels[nearest]), float(sims[nearest])
        top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
        details = {
            "probabilities": {k: round(v, 4) for k, v in top},
            "nearest": {"route": nn_label, "similarity": round(nn_sim, 4)},
        }
        p_answer = probs.get("answer", 0.0)
        p_crisis = probs.get("crisis", 0.0)
        if any(p.search(text) for p in defs.rules.get("not_crisis", ())):
            p_crisis, nn_label = 0.0, nn_label if nn_label != "crisis" else "answer"
            details["not_crisis"] = True
        if p_crisis >= defs.min_probability.get("crisis", 0.3) and (
            p_crisis - p_answer >= defs.margin("crisis")
        ):
            return self._decision("crisis", "classifier", f"p={p_crisis:.2f}", p_crisis, **details)
        if nn_label == "crisis" and nn_sim >= defs.crisis_nearest_similarity:
            return self._decision(
                "crisis", "classifier", f"nearest example {nn_sim:.2f}", nn_sim, **details
            )
        if model.harmful is not None:
            hvec = vec
            if model.harmful_embedder is not None:
                hvec = np.asarray(model.harmful_embedder.embed([text]), dtype=np.float32)
                if defs.harmful_binary_concat:
                    hvec = np.hstack([vec, hvec])
            p_harmful = float(model.harmful.probabilities(hvec, [text])[0])
            details["harmful_binary"] = round(p_harmful, 4)
            if p_harmful >= defs.harmful_binary_min:
                return self._decision(
                    "harmful", "classifier", f"harmful p={p_harmful:.2f}", p_harmful, **details
                )
        skip = {"answer", "crisis"}
        if model.harmful is not None and defs.harmful_binary_decides:
            skip.add("harmful")
        route, p = max(
            ((r, v) for r, v in probs.items() if r not in skip),
            key=lambda kv: kv[1],
            default=("answer", 0.0),
        )
        if p >= defs.min_probability.get(route, 1.01) and p - p_answer >= defs.margin(route):
            return self._decision(route, "classifier", f"p={p:.2f}", p, **details)
        return self._decision("answer", "classifier", f"p={p_answer:.2f}", p_answer, **details)

    def route(self, text: str) -> RouteDecision:
        t0 = time.perf_counter()
        decision = self._rules(text)
        t1 = time.perf_counter()
        if decision is None:
            decision = self._language_route(text)
        t2 = time.perf_counter()
        if decision is None:
            decision = self._classify(text)
        if decision.route == "answer":
            decision = self._hidden_harmful(text) or decision
        t3 = time.perf_counter()
        decision.timings_ms = {
            "rules": round((t1 - t0) * 1000, 3),
            "language": round((t2 - t1) * 1000, 3),
            "classifier": round((t3 - t2) * 1000, 3),
        }
        return decision

    __call__ = route

    def _hidden_harmful(self, text: str) -> RouteDecision | None:
        """A harmful request hidden by letter spacing, leetspeak or an encoding ("t e l l  m e
        h o w ..."): the harmful rules and classifier also read the de-obfuscated variants of
        a question that would otherwise be answered. Only a harmful verdict counts; the other
        routes are decided on the text as written."""
        norm = normalise_for_detection(text)
        for kind, variant in zip(norm.variant_kinds, norm.variants, strict=True):
            decision = self._rules(variant) or self._classify(variant)
            if decision.route == "harmful":
                decision.verdict.reason += f" in {kind} variant"
                decision.verdict.details["variant"] = kind
                return decision
        return None

    # -- replies

    def message(self, decision: RouteDecision | str, keywords: str = "") -> str:
        """The canned reply for a route (or a decision, which may pick a variant)."""
        texts, _ = route_messages()
        if isinstance(decision, RouteDecision):
            key = decision.message_key or decision.route
        else:
            key = decision
        template = texts.get(key) or texts.get(key.split("_welsh")[0], "")
        return template.format(keywords=urllib.parse.quote_plus(keywords[:200]))


__all__ = [
    "REFUSALS",
    "ROUTES",
    "LanguageIdentifier",
    "QuestionRouter",
    "RouteDecision",
    "RouteDefinitions",
    "route_definitions",
    "route_messages",
]
