"""The FastAPI application: built by a factory, wired once in the lifespan."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.exc import SQLAlchemyError
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chat_api.repository import ConversationFull
from chat_api.services import Services, build_services
from chat_api.types import PipelineState, Question, Status
from govchat.db import is_unavailable
from govchat.settings import Settings, get_settings

log = logging.getLogger(__name__)

API = "/api/v1"
DEMO_PAGE = Path(__file__).resolve().parent.parent / "web" / "static" / "index.html"


# ------------------------------------------------------------------------ schemas


# Control characters (other than tab and line breaks) and lone surrogates: never valid text,
# and PostgreSQL cannot store NUL. Rejected with a 422 before anything is stored.
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_TEXT_PATTERN = {"pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"}


def _clean_text(value: str | None) -> str | None:
    if value is not None and _BAD_CHARS.search(value):
        raise ValueError("contains control characters or invalid Unicode")
    return value


class AskBody(BaseModel):
    question: str = Field(
        ...,
        min_length=1,
        max_length=5000,
        description="The user's question.",
        json_schema_extra=_TEXT_PATTERN,
    )

    _check_text = field_validator("question")(_clean_text)


class FeedbackBody(BaseModel):
    useful: bool
    reason: str | None = Field(None, max_length=100, json_schema_extra=_TEXT_PATTERN)
    comment: str | None = Field(None, max_length=2000, json_schema_extra=_TEXT_PATTERN)

    _check_text = field_validator("reason", "comment")(_clean_text)


class ValidationProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error: {"detail": message} (or a list of problems for 422)."""

    detail: str | list[ValidationProblem]


_ERROR_TEXT = {
    401: "No API key, or an invalid or revoked one.",
    404: "No conversation or answer with that id.",
    409: "The conversation is full: start a new one.",
    413: "The request body is too large.",
    415: "The request body is not JSON.",
    422: "Invalid input.",
    429: "Rate limit exceeded (see the X-RateLimit-* and Retry-After headers).",
    503: "The service is paused, or the database is unavailable: try again later.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut, "description": _ERROR_TEXT[code]} for code in codes}


def _is_id(value: str) -> bool:
    """Conversation, question and answer ids are UUIDs; anything else cannot exist."""
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class SourceOut(BaseModel):
    url: str
    title: str
    heading: str


class AnswerOut(BaseModel):
    id: str
    status: str
    message: str
    sources: list[SourceOut]
    route: str
    created_at: str


class TurnOut(BaseModel):
    conversation_id: str
    question_id: str
    answer: AnswerOut


class ConversationTurn(BaseModel):
    question_id: str
    question: str
    answer: AnswerOut


class ConversationOut(BaseModel):
    conversation_id: str
    created_at: str
    turns: list[ConversationTurn]


class FeedbackOut(BaseModel):
    answer_id: str
    useful: bool
    reason: str | None = None
    comment: str | None = None
    created_at: str


# ------------------------------------------------------------------------ dependencies


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


@dataclass
class Caller:
    client: str  # API client name, or "anonymous:<ip>"
    end_user: str | None
    headers: dict[str, str]


def identify_caller(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
    x_end_user_id: Annotated[str | None, Header(max_length=200)] = None,
) -> Caller:
    settings = services.settings
    secret = x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        secret = authorization[7:].strip()
    client = services.repository.verify_api_key(secret) if secret else None
    if secret and client is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if client is None and settings.api_keys_required:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API key is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    host = request.client.host if request.client else "unknown"
    # End-user ids may be personal data (an email, a customer number): only a keyed hash of
    # them is ever stored or used in rate-limit keys.
    end_user = _pseudonym(caller_client := client or f"anonymous:{host}", x_end_user_id)
    caller = Caller(caller_client, end_user, {})
    limits = [("client", caller.client, settings.rate_limit_client_per_minute)]
    if end_user:
        limits.append(("user", f"{caller.client}|{end_user}", settings.rate_limit_user_per_minute))
    for scope, key, limit in limits:
        if limit <= 0:
            continue
        allowed, remaining, reset = services.repository.hit_rate_limit(f"{scope}:{key}", limit, 60)
        caller.headers.update(
            {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(reset),
            }
        )
        if not allowed:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"rate limit exceeded for this {'end user' if scope == 'user' else 'client'}: "
                f"{limit} questions a minute",
                headers={**caller.headers, "Retry-After": str(max(1, reset - int(time.time())))},
            )
    return caller


CallerDep = Annotated[Caller, Depends(identify_caller)]


def _pseudonym(client: str, end_user_id: str | None) -> str | None:
    """A stable pseudonym for an API client's end user: "u_" + SHA-256 of (client, id)."""
    if not end_user_id:
        return None
    digest = hashlib.sha256(f"{client}\x00{end_user_id}".encode()).hexdigest()
    return f"u_{digest[:40]}"


PAUSED_MESSAGE = (
    "This service is switched off for now. Please try again later, or search GOV.UK: "
    "https://www.gov.uk/search"
)


def ensure_service_on(services: ServicesDep) -> None:
    """The kill switch (`govchat service off`): stored in the database, read on every question,
    so it takes effect in every API process at once."""
    if services.repository.service_state()["paused"]:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, PAUSED_MESSAGE, headers={"Retry-After": "300"}
        )


ServiceOnDep = Annotated[None, Depends(ensure_service_on)]


# ------------------------------------------------------------------------ app


def create_app(
    settings: Settings | None = None,
    services_factory: Callable[[Settings], Services] = build_services,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = await asyncio.to_thread(services_factory, settings)
        try:
            yield
        finally:
            app.state.services.close()

    app = FastAPI(
        title="govchat",
        version="0.1.0",
        description="Answers from GOV.UK guidance, cited to the section.",
        lifespan=lifespan,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-End-User-Id", "Accept"],
            expose_headers=[
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
            ],
        )

    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", [])), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # Bytes that are not UTF-8 text: invalid input like any other broken JSON.
            problem = {"loc": ["body"], "msg": "the body is not valid UTF-8 JSON", "type": "json"}
            return JSONResponse({"detail": [problem]}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, exc: SQLAlchemyError):
        if is_unavailable(exc):
            # Locked, unreachable or out of connections: nothing was stored (one transaction
            # per turn), so the client can safely ask again.
            log.warning(
                "database unavailable on %s %s: %s",
                request.method,
                request.url.path,
                type(exc.orig if hasattr(exc, "orig") else exc).__name__,
            )
            return JSONResponse(
                {"detail": "the database is unavailable: nothing was saved, please try again"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        log.error("database error on %s %s: %s", request.method, request.url.path, type(exc))
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    _add_routes(app)
    from web.routes import mount_web  # the widget's config, /admin, /static (web/)

    mount_web(app, settings)
    return app


def _wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def _add_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def demo_page() -> FileResponse:
        return FileResponse(DEMO_PAGE, media_type="text/html; charset=utf-8")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(services: ServicesDep, response: Response) -> dict[str, Any]:
        checks: dict[str, str] = {}
        try:
            services.repository.ping()
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            if services.store is not None:
                services.store.count()
            checks["index"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["index"] = f"error: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        paused = False
        if checks["database"] == "ok":
            try:
                paused = bool(services.repository.service_state()["paused"])
            except Exception:  # noqa: BLE001 - reported by the database check next time
                paused = False
        response.status_code = 200 if ready else 503
        # A paused service stays "ready": its replicas keep answering with the clear 503 message
        # instead of being taken out of the load balancer.
        return {"status": "ready" if ready else "unavailable", "checks": checks, "paused": paused}

    @app.post(
        f"{API}/conversations",
        status_code=201,
        response_model=TurnOut,
        tags=["conversations"],
        responses={
            200: {"content": {"text/event-stream": {}}},
            **_errors(401, 413, 415, 422, 429, 503),
        },
    )
    async def start_conversation(
        body: AskBody, request: Request, services: ServicesDep, _on: ServiceOnDep, caller: CallerDep
    ):
        return await _ask(request, services, caller, None, body.question)

    @app.post(
        f"{API}/conversations/{{conversation_id}}/questions",
        status_code=201,
        response_model=TurnOut,
        tags=["conversations"],
        responses=_errors(401, 404, 409, 413, 415, 422, 429, 503),
    )
    async def ask_follow_up(
        conversation_id: str,
        body: AskBody,
        request: Request,
        services: ServicesDep,
        _on: ServiceOnDep,
        caller: CallerDep,
    ):
        if not _is_id(conversation_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "conversation not found")
        return await _ask(request, services, caller, conversation_id, body.question)

    @app.get(
        f"{API}/conversations/{{conversation_id}}",
        response_model=ConversationOut,
        tags=["conversations"],
        responses=_errors(404, 503),
    )
    def read_conversation(conversation_id: str, services: ServicesDep):
        if not _is_id(conversation_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "conversation not found")
        return _or_404(
            lambda: services.repository.get_conversation(conversation_id), "conversation"
        )

    @app.post(
        f"{API}/answers/{{answer_id}}/feedback",
        status_code=201,
        response_model=FeedbackOut,
        tags=["feedback"],
        responses=_errors(401, 404, 413, 415, 422, 429, 503),
    )
    def record_feedback(
        answer_id: str, body: FeedbackBody, services: ServicesDep, caller: CallerDep
    ):
        if not _is_id(answer_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "answer not found")
        # Free-text feedback is redacted like questions before it is stored.
        # (Placeholders can be longer than what they replace: cut back to the stored limits.)
        reason = (_redact(services, body.reason) or "")[:100] or None
        comment = (_redact(services, body.comment) or "")[:2000] or None
        return _or_404(
            lambda: services.repository.add_feedback(answer_id, body.useful, reason, comment),
            "answer",
        )


CONVERSATION_FULL = "this conversation is full: start a new one"


# An HTML tag or comment (closed or not): answers and sources are plain text with Markdown links.
def _redact(services: Services, text: str | None) -> str | None:
    if not text:
        return text
    detector = getattr(services.guards, "personal_data", None)
    if detector is not None:
        return detector.redact(text).text
    from guardrails import input as input_guards

    return input_guards.redact_personal_data(text).text


def _or_404(fn: Callable[[], Any], what: str) -> Any:
    from chat_api.repository import NotFound

    try:
        return fn()
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found") from None


async def _ask(
    request: Request,
    services: ServicesDep,
    caller: Caller,
    conversation_id: str | None,
    question: str,
):
    repo = services.repository
    history = []
    if conversation_id is not None:
        history = _or_404(lambda: repo.get_history(conversation_id), "conversation")
        if repo.count_turns(conversation_id) >= services.settings.max_turns_per_conversation:
            raise HTTPException(status.HTTP_409_CONFLICT, CONVERSATION_FULL)
    saved: dict[str, Any] = {}

    def record(state: PipelineState) -> None:
        if conversation_id is None:
            conv_id, question_id, answer = repo.save_first_turn(
                state, end_user_id=caller.end_user, api_client_id=caller.client
            )
        else:
            conv_id = conversation_id
            question_id, answer = repo.save_turn(
                conversation_id,
                state.redacted_question,
                state.redactions,
                state,
                max_turns=services.settings.max_turns_per_conversation,
            )
        saved.update(conversation_id=conv_id, question_id=question_id, answer=answer)

    q = Question(
        question, history=history, conversation_id=conversation_id, end_user_id=caller.end_user
    )
    pipeline = services.pipeline(record)
    if _wants_stream(request):
        return _stream(pipeline, q, saved, caller.headers)
    try:
        await asyncio.to_thread(pipeline.run, q)
    except ConversationFull:
        raise HTTPException(status.HTTP_409_CONFLICT, CONVERSATION_FULL) from None
    return JSONResponse(saved, status_code=201, headers=caller.headers)


def _stream(pipeline, question: Question, saved: dict[str, Any], headers: dict[str, str]):
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
    cancelled = threading.Event()

    def emit(event: str, data: dict[str, Any]) -> None:
        if cancelled.is_set():
            raise ClientGone("the client disconnected")
        loop.call_soon_threadsafe(queue.put_nowait, (event, data))

    def work() -> None:
        try:
            pipeline.run(question, emit=emit)
            loop.call_soon_threadsafe(queue.put_nowait, ("done", saved))
        except ConversationFull:
            loop.call_soon_threadsafe(queue.put_nowait, ("error", {"detail": CONVERSATION_FULL}))
        except Exception as exc:  # noqa: BLE001 - storing failed: tell the client
            log.error("streamed turn failed: %s", type(exc).__name__, exc_info=exc)
            loop.call_soon_threadsafe(
                queue.put_nowait,
                ("error", {"detail": "the answer could not be saved: please try again"}),
            )
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    async def events():
        task = loop.run_in_executor(None, work)
        try:
            while (item := await queue.get()) is not None:
                event, data = item
                yield {"event": event, "data": json.dumps(data, ensure_ascii=False)}
        finally:
            cancelled.set()
            await asyncio.shield(task)

    return EventSourceResponse(events(), status_code=201, headers=headers, ping=15)


class ClientGone(Exception):
    pass


# ------------------------------------------------------------------------ middleware

_JSON_TYPE = re.compile(r"^application/([\w.+-]+\+)?json\s*(;|$)", re.IGNORECASE)
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
# Responses that are data, never a page: nothing in them may run or be framed, or be cached.
_DATA_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]


class RequestGuard:
    """Pure ASGI middleware (safe with streaming responses):

    - request bodies over ``max_body_bytes`` get 413, whether announced by Content-Length or
      sent chunked (counted as they arrive, so a huge body is never read into memory);
    - a POST body to the JSON API that is not JSON (by Content-Type) gets 415;
    - every response gets security headers (never overriding ones a route set itself), and data
      responses (JSON, event streams) a strict Content-Security-Policy and no caching.
    """

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        send = self._with_headers(send, scope)
        length = headers.get(b"content-length", b"")
        has_body = (length.isdigit() and int(length) > 0) or b"transfer-encoding" in headers
        if length.isdigit() and int(length) > self.max_body_bytes:
            await self._reject(send, 413, f"request body over {self.max_body_bytes} bytes")
            return
        if (
            scope["method"] in ("POST", "PUT", "PATCH")
            and scope["path"].startswith(API + "/")
            and has_body
            and not _JSON_TYPE.match(headers.get(b"content-type", b"").decode("latin-1"))
        ):
            await self._reject(send, 415, "send the body as JSON (Content-Type: application/json)")
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Any) -> Any:
        seen = 0
        limit = self.max_body_bytes

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(
                        status.HTTP_413_CONTENT_TOO_LARGE, f"request body over {limit} bytes"
                    )
            return message

        return counted

    @staticmethod
    def _with_headers(send: Any, scope: dict[str, Any]) -> Any:
        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                extra = list(_SECURITY_HEADERS)
                if b"json" in content_type or b"event-stream" in content_type:
                    extra += _DATA_HEADERS
                if scope.get("scheme") == "https":
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        return sending

    @staticmethod
    async def _reject(send: Any, code: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = ["create_app", "Status"]
