"""Conversations: how close the condensed last question is to the dataset's standalone form."""

from __future__ import annotations

from evaluation.metrics.answers import EmbedFn


def condense_similarity(condensed: str, standalone: str, embed: EmbedFn) -> float | None:
    """Cosine similarity of the condensed question and `standalone_last_question`.

    None when either is empty (the turn stopped before condensing, or the dataset has none).
    """
    if not condensed.strip() or not standalone.strip():
        return None
    vectors = embed([condensed, standalone])
    return float(vectors[0] @ vectors[1])
