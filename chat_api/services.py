"""Long-lived components of the API, built once in the app's lifespan and injected into routes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from sqlalchemy.orm import sessionmaker

from chat_api.pipeline import AnswerPipeline, build_pipeline
from chat_api.types import PipelineState
from govchat.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker
    repository: Any  # chat_api.repository.Repository
    retriever: Any  # retrieval.search.HybridRetriever (or a test double)
    llm: BaseChatModel
    response_format: dict[str, Any] | None = None
    guards: Any = None  # chat_api.pipeline.Guards; None = the simple rules only
    store: Any = None  # retrieval.store.ChunkStore, for readiness checks
    closers: list[Callable[[], None]] = field(default_factory=list)

    def pipeline(self, recorder: Callable[[PipelineState], None] | None) -> AnswerPipeline:
        return build_pipeline(
            self.settings,
            retriever=self.retriever,
            llm=self.llm,
            recorder=recorder,
            response_format=self.response_format,
            guards=self.guards,
        )

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # noqa: BLE001 - shutting down: log and carry on
                log.exception("error while closing a service")


def build_services(settings: Settings) -> Services:
    """The real components: database (migrated), Qdrant, embedding model, LLM."""
    from chat_api.llm import build_chat_model, json_schema_format
    from chat_api.pipeline import deployment_guards
    from chat_api.repository import Repository
    from chat_api.steps import ANSWER_SCHEMA
    from govchat.db import init_db, make_engine
    from govchat.services import build_retriever, open_store

    engine = make_engine(settings)
    sessions = init_db(engine)
    store = open_store(settings)
    retriever = build_retriever(settings, store)
    llm = build_chat_model(settings)
    guards = deployment_guards(settings, retriever.embedder, llm)
    services = Services(
        settings=settings,
        sessions=sessions,
        repository=Repository(sessions, retry_seconds=settings.database_timeout),
        retriever=retriever,
        llm=llm,
        response_format=json_schema_format("govuk_answer", ANSWER_SCHEMA),
        guards=guards,
        store=store,
    )
    services.closers += [engine.dispose, store.client.close]
    return services
