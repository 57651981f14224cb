"""App factories for the reliability tests: the real app, database and pipeline, with fakes only
at the boundaries (the index and the LLM)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chat_api.app import create_app
from chat_api.llm import build_chat_model, json_schema_format
from chat_api.repository import Repository
from chat_api.services import Services
from chat_api.steps import ANSWER_SCHEMA
from govchat.db import init_db, make_engine
from govchat.settings import Settings
from tests.chat_api.fakes import FakeRetriever, RecordingLLM, answer_json

GOOD = answer_json("SSP is £116.75 a week for up to 28 weeks ([SSP](link_1)).")


def endless_llm(reply: str = GOOD) -> RecordingLLM:
    """A fake chat model that gives the same reply for ever."""
    from langchain_core.messages import AIMessage

    return RecordingLLM(messages=itertools.cycle([AIMessage(reply)]), prompts=[])


FROM_SETTINGS = "from-settings"  # the real client for GOVCHAT_LLM_BASE_URL (a fake server)


def _llm(llm: Any, s: Settings) -> Any:
    if llm == FROM_SETTINGS:
        return build_chat_model(s)
    return llm if llm is not None else endless_llm()


def services_factory(
    retriever: Any = None, llm: Any = None, guards: Any = None
) -> Callable[[Settings], Services]:
    def factory(s: Settings) -> Services:
        engine = make_engine(s)
        sessions = init_db(engine)
        services = Services(
            settings=s,
            sessions=sessions,
            repository=Repository(sessions, retry_seconds=s.database_timeout),
            retriever=retriever if retriever is not None else FakeRetriever(),
            llm=_llm(llm, s),
            guards=guards,
            response_format=json_schema_format("govuk_answer", ANSWER_SCHEMA),
        )
        services.closers.append(engine.dispose)
        return services

    return factory


def make_app(data_dir: Path, factory: Callable[[Settings], Services] | None = None, **kw: Any):
    settings = Settings(data_dir=data_dir, **kw)
    return create_app(settings, services_factory=factory or services_factory())
