"""Fakes for the chat API tests: a retriever and a chat model at the LLM boundary."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from retrieval.search import SearchResult, StageScores

SSP_URL = "https://www.gov.uk/employers-sick-pay/entitlement"
SSP_TEXT = "The weekly rate for Statutory Sick Pay (SSP) is £116.75 for up to 28 weeks."
NMW_URL = "https://www.gov.uk/national-minimum-wage-rates#current-rates"


def _result(
    url: str,
    text: str,
    dense: float = 0.7,
    title: str = "SSP: employer guide",
    trail: tuple[str, ...] = ("Entitlement",),
) -> SearchResult:
    path = url.removeprefix("https://www.gov.uk")
    return SearchResult(
        chunk_id=f"id-{path}",
        url=url,
        exact_path=path,
        base_path="/" + path.split("/")[1],
        title=title,
        heading_trail=list(trail),
        document_type="guide",
        text=text,
        score=dense,
        stages=StageScores(dense=dense, fused=dense, final=dense),
    )


class FakeRetriever:
    def __init__(self, results: list[SearchResult] | None = None, error: Exception | None = None):
        self.results = (
            results
            if results is not None
            else [
                _result(SSP_URL, SSP_TEXT),
                _result(
                    NMW_URL,
                    "The National Living Wage is £11.44 an hour.",
                    0.5,
                    "National Minimum Wage rates",
                    ("Current rates",),
                ),
            ]
        )
        self.error = error
        self.queries: list[str] = []

    def search(self, query: str, k: int | None = None, **kw: Any) -> list[SearchResult]:
        self.queries.append(query)
        if self.error:
            raise self.error
        return self.results[: k or 5]


class RecordingLLM(GenericFakeChatModel):
    """A fake chat model that also records the prompts it was given."""

    prompts: list[str] = []

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.prompts.append("\n".join(str(m.content) for m in messages))
        yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)


def llm_replying(*replies: str) -> RecordingLLM:
    return RecordingLLM(messages=iter([AIMessage(r) for r in replies]), prompts=[])


def answer_json(answer: str, complete: bool = True, sources=("link_1",)) -> str:
    return json.dumps({"answer": answer, "complete": complete, "sources": list(sources)})
