"""The app as one of several uvicorn worker processes in the multi-worker tests:

    python -m uvicorn tests.reliability.worker_app:create --factory --port P

Settings come from the environment like in production (GOVCHAT_DATABASE_URL, GOVCHAT_LLM_BASE_URL
pointing at a fake OpenAI-compatible server, rate limits); only the index is a stand-in (a local
Qdrant folder can be opened by one process only, and no Qdrant server runs on this machine)."""

from __future__ import annotations

from chat_api.app import create_app
from govchat.settings import Settings
from tests.reliability.apps import FROM_SETTINGS, services_factory


def create():
    return create_app(Settings(), services_factory=services_factory(llm=FROM_SETTINGS))
