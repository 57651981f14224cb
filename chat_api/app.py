"""The FastAPI application: built by a factory, wired once in the lifespan."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from chat_api.services import Services, build_services
from chat_api.types import PipelineState, Question, Status
from govchat.settings import Settings, get_settings

log = logging.getLogger(__name__)

API = "/api/v1"
DEMO_PAGE = Path(__file__).resolve().parent.parent / "web" / "static" / "index.html"


# ------------------------------------------------------------------------ schemas


class AskBody(BaseModel):
    question: str = Field(..., min_length=1, max_length=5000, description="The user's question.")


class FeedbackBody(BaseModel):
    useful: bool
    reason: str | None = Field(None, max_length=100)
    comment: str | None = Field(None, max_length=2000)


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
    caller = Caller(client or f"anonymous:{host}", x_end_user_id, {})
    limits = [("client", caller.client, settings.rate_limit_client_per_minute)]
    if x_end_user_id:
        limits.append(
            ("user", f"{caller.client}|{x_end_user_id}", settings.rate_limit_user_per_minute)
        )
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

    @app.middleware("http")
    async def limit_body_size(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_body_bytes:
            return JSONResponse(
                {"detail": f"request body over {settings.max_body_bytes} bytes"}, status_code=413
            )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", [])), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    _add_routes(app)
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
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "unavailable", "checks": checks}

    @app.post(
        f"{API}/conversations",
        status_code=201,
        response_model=TurnOut,
        tags=["conversations"],
        responses={200: {"content": {"text/event-stream": {}}}, 429: {}, 422: {}},
    )
    async def start_conversation(
        body: AskBody, request: Request, services: ServicesDep, caller: CallerDep
    ):
        return await _ask(request, services, caller, None, body.question)

    @app.post(
        f"{API}/conversations/{{conversation_id}}/questions",
        status_code=201,
        response_model=TurnOut,
        tags=["conversations"],
        responses={404: {}, 409: {}, 429: {}, 422: {}},
    )
    async def ask_follow_up(
        conversation_id: str,
        body: AskBody,
        request: Request,
        services: ServicesDep,
        caller: CallerDep,
    ):
        return await _ask(request, services, caller, conversation_id, body.question)

    @app.get(
        f"{API}/conversations/{{conversation_id}}",
        response_model=ConversationOut,
        tags=["conversations"],
        responses={404: {}},
    )
    def read_conversation(conversation_id: str, services: ServicesDep):
        return _or_404(
            lambda: services.repository.get_conversation(conversation_id), "conversation"
        )

    @app.post(
        f"{API}/answers/{{answer_id}}/feedback",
        status_code=201,
        response_model=FeedbackOut,
        tags=["feedback"],
        responses={404: {}},
    )
    def record_feedback(
        answer_id: str, body: FeedbackBody, services: ServicesDep, caller: CallerDep
    ):
        return _or_404(
            lambda: services.repository.add_feedback(
                answer_id, body.useful, body.reason, body.comment
            ),
            "answer",
        )


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
            raise HTTPException(
                status.HTTP_409_CONFLICT, "this conversation is full: start a new one"
            )
    saved: dict[str, Any] = {}

    def record(state: PipelineState) -> None:
        if conversation_id is None:
            conv_id, question_id, answer = repo.save_first_turn(
                state, end_user_id=caller.end_user, api_client_id=caller.client
            )
        else:
            conv_id = conversation_id
            question_id, answer = repo.save_turn(
                conversation_id, state.redacted_question, state.redactions, state
            )
        saved.update(conversation_id=conv_id, question_id=question_id, answer=answer)

    q = Question(
        question, history=history, conversation_id=conversation_id, end_user_id=caller.end_user
    )
    pipeline = services.pipeline(record)
    if _wants_stream(request):
        return _stream(pipeline, q, saved, caller.headers)
    await asyncio.to_thread(pipeline.run, q)
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
        except Exception as exc:  # noqa: BLE001 - storing failed: tell the client
            log.exception("streamed turn failed")
            loop.call_soon_threadsafe(
                queue.put_nowait,
                ("error", {"detail": f"the answer could not be saved: {type(exc).__name__}"}),
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


__all__ = ["create_app", "Status"]
