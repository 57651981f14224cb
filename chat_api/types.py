"""Typed records of the answer pipeline, shared by the steps, the API, storage and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Every way a turn can end. Stored with each answer; the API returns the value."""

    ANSWERED = "answered"
    CANNOT_ANSWER = "cannot_answer"  # nothing relevant retrieved, nothing used, or incomplete
    INVALID_INPUT = "invalid_input"  # empty, too long, unreadable
    JAILBREAK = "jailbreak"
    OFF_TOPIC = "off_topic"
    HARMFUL = "harmful"
    ADVICE_OPINION = "advice_opinion"
    GREETING = "greeting"
    ACKNOWLEDGEMENT = "acknowledgement"
    NON_ENGLISH = "non_english"
    CRISIS = "crisis"
    NEEDS_ACCOUNT = "needs_account"  # needs the user's own account data
    UNCLEAR = "unclear"
    OUTPUT_BLOCKED = "output_blocked"  # an output guardrail removed the answer
    LLM_ERROR = "llm_error"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"  # the search index or another dependency is down


@dataclass
class Turn:
    """A previous question (redacted) and the answer given, for condensing follow-ups."""

    question: str
    answer: str


@dataclass
class Verdict:
    """What one guardrail decided, and why."""

    name: str
    passed: bool
    reason: str = ""
    confidence: float = 1.0
    version: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reason": self.reason,
            "confidence": round(self.confidence, 4),
            "version": self.version,
            **({"details": self.details} if self.details else {}),
        }


@dataclass
class RetrievedChunk:
    chunk_id: str
    url: str
    exact_path: str
    base_path: str
    title: str
    heading_trail: list[str]
    document_type: str
    text: str
    score: float
    stages: dict[str, Any] = field(default_factory=dict)

    @property
    def heading(self) -> str:
        return self.heading_trail[-1] if self.heading_trail else ""

    @classmethod
    def from_search_result(cls, r: Any) -> RetrievedChunk:
        """From a retrieval.search.SearchResult (kept separate: this is what a turn stores)."""
        return cls(
            chunk_id=r.chunk_id,
            url=r.url,
            exact_path=r.exact_path,
            base_path=r.base_path,
            title=r.title,
            heading_trail=list(r.heading_trail),
            document_type=r.document_type,
            text=r.text,
            score=r.score,
            stages=r.as_dict()["stages"],
        )


@dataclass
class Source:
    """A cited GOV.UK section, as shown to the user."""

    url: str
    title: str
    heading: str
    chunk_id: str = ""
    excerpt: str = ""
    used: bool = True
    score: float | None = None

    def public(self) -> dict[str, Any]:
        return {"url": self.url, "title": self.title, "heading": self.heading}


@dataclass
class Question:
    """The input of one turn."""

    text: str
    history: list[Turn] = field(default_factory=list)
    conversation_id: str | None = None
    end_user_id: str | None = None


@dataclass
class PipelineState:
    """What the steps read and write for one turn. The final fields form the answer."""

    question: Question
    redacted_question: str = ""
    redactions: list[str] = field(default_factory=list)  # kinds of personal data removed
    condensed_question: str = ""
    search_query: str = ""  # what retrieval searched for (condensed + earlier questions)
    route: str = "answer"
    retrieved: list[RetrievedChunk] = field(default_factory=list)
    prompt_chunks: list[RetrievedChunk] = field(default_factory=list)
    answer_markdown: str = ""
    complete: bool = False
    used_source_ids: list[str] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    status: Status | None = None
    message: str = ""
    guardrails: dict[str, Verdict] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # prompts, guardrails, models
    llm_model: str = ""

    @property
    def stopped(self) -> bool:
        return self.status is not None

    def stop(self, status: Status, message: str) -> None:
        self.status = status
        self.message = message
