"""Property-based fuzzing of the public HTTP API from its own OpenAPI document (schemathesis).

The real app, database (SQLite file) and pipeline; fakes only for the index and the LLM. Every
operation gets generated valid and invalid requests: no 5xx, and every response matches the
documented schema (status code, content type, body, headers)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from tests.reliability.apps import make_app

_DATA = Path(tempfile.mkdtemp(prefix="govchat-fuzz-"))
APP = make_app(
    _DATA / "data",
    rate_limit_client_per_minute=0,
    rate_limit_user_per_minute=0,
    max_turns_per_conversation=1000,
)
# The admin API (web/, behind GOVCHAT_ADMIN_TOKEN, off here) is fuzzed by its own tests: its
# operations start index jobs. Everything public is fuzzed here.
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path_regex="^/admin")


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case):
    case.call_and_validate()
