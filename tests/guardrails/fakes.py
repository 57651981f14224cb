"""Fakes at the language-model boundary, shared by the guardrail tests."""

from __future__ import annotations


class FixedScorer:
    """A letter scorer with fixed probabilities (or an exception to raise); records the texts."""

    name = "fixed"

    def __init__(self, probs: dict[str, float] | Exception) -> None:
        self.probs = probs
        self.seen: list[str] = []

    def load(self) -> None:
        return None

    def probabilities(self, defs, text):
        self.seen.append(text)
        if isinstance(self.probs, Exception):
            raise self.probs
        return self.probs


class FixedTranslator:
    """A translator with fixed English for each text (or an exception); records the texts."""

    name = "fixed"

    def __init__(self, english: dict[str, str] | Exception, *, refused: bool = False) -> None:
        self.english = english
        self.refused = refused
        self.seen: list[str] = []

    def load(self) -> None:
        return None

    def __call__(self, text):
        from guardrails.translate import Translation

        self.seen.append(text)
        if isinstance(self.english, Exception):
            raise self.english
        return Translation(
            self.english[text], refused=self.refused, refusal_is_attack=True, version="t-1"
        )
