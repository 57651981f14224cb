"""User feedback from the configured database, to show beside the automated scores."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select


def feedback_summary(sessions: Any, topic_of_page: Mapping[str, str] | None = None) -> dict:
    """Counts of useful / not useful, reasons, per answer status, and per topic where the
    answer's cited pages belong to a topic of the evaluation datasets (`topic_of_page`: base or
    page path -> topic). The latest feedback per answer counts (as the API reads it)."""
    from chat_api.models import AnswerRecord, AnswerSourceRecord, FeedbackRecord

    topic_of_page = topic_of_page or {}
    with sessions() as s:
        rows = s.execute(
            select(FeedbackRecord, AnswerRecord.status)
            .join(AnswerRecord, FeedbackRecord.answer_id == AnswerRecord.id)
            .order_by(FeedbackRecord.created_at, FeedbackRecord.id)
        ).all()
        latest: dict[str, tuple[Any, str]] = {}
        for fb, status in rows:
            latest[fb.answer_id] = (fb, status)
        urls: dict[str, list[str]] = defaultdict(list)
        if latest:
            for src in s.scalars(
                select(AnswerSourceRecord).where(AnswerSourceRecord.answer_id.in_(list(latest)))
            ):
                if getattr(src, "used", True):
                    urls[src.answer_id].append(src.url)
    by_status: dict[str, Counter[str]] = defaultdict(Counter)
    by_topic: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    comments = 0
    for answer_id, (fb, status) in latest.items():
        verdict = "useful" if fb.useful else "not_useful"
        by_status[status][verdict] += 1
        if fb.reason:
            reasons[fb.reason] += 1
        comments += bool(fb.comment)
        topics = {_topic(u, topic_of_page) for u in urls.get(answer_id, [])} - {None}
        for t in topics or {"(no matching topic)"}:
            by_topic[t][verdict] += 1
    total = len(latest)
    useful = sum(1 for fb, _ in latest.values() if fb.useful)
    return {
        "answers_with_feedback": total,
        "useful": useful,
        "not_useful": total - useful,
        "useful_rate": useful / total if total else None,
        "reasons": dict(reasons.most_common()),
        "comments": comments,
        "by_status": {k: dict(v) for k, v in sorted(by_status.items())},
        "by_topic": {k: dict(v) for k, v in sorted(by_topic.items())},
    }


def _topic(url: str, topic_of_page: Mapping[str, str]) -> str | None:
    from evaluation.retrieval import normalise_path, page_path

    path = page_path(normalise_path(url))
    while path and path != "/":
        if path in topic_of_page:
            return topic_of_page[path]
        path = path.rsplit("/", 1)[0]
    return None
