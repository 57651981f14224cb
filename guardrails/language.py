"""Language identification shared by the router (the non-English reply) and personal-data
detection (one-word "names" in other languages): py3langid with normalised probabilities, the
model inside the wheel, loaded once per process on first use."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

from guardrails.normalise import script_stats


@dataclass
class LanguageGuess:
    language: str
    confidence: float
    english: float
    non_latin_share: float
    letters: int
    words: int


_WORD = re.compile(r"[^\W\d_]+")


class LanguageIdentifier:
    """py3langid with normalised probabilities; the model (inside the wheel) loads on first use."""

    def __init__(self) -> None:
        self._ident: Any = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        if self._ident is None:
            with self._lock:
                if self._ident is None:
                    from py3langid.langid import MODEL_FILE
                    from py3langid.langid import LanguageIdentifier as _Ident

                    self._ident = _Ident.from_model_file(MODEL_FILE, norm_probs=True)
        return self._ident

    def guess(
        self,
        text: str,
        english_like: frozenset[str],
        related: tuple[frozenset[str], ...] = (),
    ) -> LanguageGuess:
        """The top language and its probability; with `related` groups (close languages that
        langid splits between, such as Indonesian and Malay), the probability of the top
        language's whole group."""
        letters, share = script_stats(text)
        ranked = self._model().rank(text)
        top, conf = ranked[0]
        group = next((g for g in related if top in g), None)
        if group is not None:
            conf = sum(p for lang, p in ranked if lang in group)
        english = sum(p for lang, p in ranked if lang in english_like)
        return LanguageGuess(
            str(top), float(conf), float(english), share, letters, len(_WORD.findall(text))
        )


@cache
def language_identifier() -> LanguageIdentifier:
    """The process's one identifier (its model loads on the first guess)."""
    return LanguageIdentifier()


__all__ = ["LanguageGuess", "LanguageIdentifier", "language_identifier"]
