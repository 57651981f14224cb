"""The answer pipeline, in one place:

    validate -> redact personal data -> jailbreak check -> condense with history -> route
    -> retrieve -> compose -> output checks -> store

Each step may end the turn with a status and a message; `store` always runs.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel

from chat_api import steps as s
from chat_api.types import PipelineState, Question, Status

log = logging.getLogger(__name__)

_TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (
    s.LLMTimeout,
    TimeoutError,
    httpx.TimeoutException,
)
try:  # the OpenAI client's own timeout error
    import openai

    _TIMEOUT_ERRORS = (*_TIMEOUT_ERRORS, openai.APITimeoutError)
except ImportError:  # pragma: no cover
    pass


# HTML tags and comments (an unclosed one to the end): never part of a plain-text answer.
_MARKUP = re.compile(r"<!--.*?(-->|$)|</?[A-Za-z][^<>]*>?", re.DOTALL)


def _noop(event: str, data: dict[str, Any]) -> None:
    return None


class StoreTurn:
    """Hand the finished turn to a recorder (the database in the API; nothing in `ask`)."""

    name = "store"
    always = True

    def __init__(self, recorder: Callable[[PipelineState], None]):
        self.recorder = recorder

    def run(self, state: PipelineState, emit: s.Emit) -> None:
        self.recorder(state)


class AnswerPipeline:
    def __init__(self, steps: list[Any], *, answer_timeout: float | None = None) -> None:
        self.steps = steps
        self.answer_timeout = answer_timeout
        self._deadline: float | None = None

    @property
    def names(self) -> list[str]:
        return [step.name for step in self.steps]

    def deadline(self) -> float | None:
        return self._deadline

    def run(self, question: Question, emit: s.Emit = _noop) -> PipelineState:
        state = PipelineState(question=question)
        started = time.monotonic()
        self._deadline = started + self.answer_timeout if self.answer_timeout else None
        for step in self.steps:
            if getattr(step, "always", False):
                self._finish(state)
            elif state.stopped:
                continue
            t0 = time.perf_counter()
            try:
                step.run(state, emit)
            except _TIMEOUT_ERRORS as exc:
                log.warning("step %s timed out: %s", step.name, exc)
                self._fail(state, Status.TIMEOUT, step.name, exc)
            except Exception as exc:  # noqa: BLE001 - a failing step must not become a 500
                log.exception("step %s failed", step.name)
                status = (
                    Status.LLM_ERROR
                    if step.name in ("condense", "compose")
                    else (Status.UNAVAILABLE)
                )
                if getattr(step, "always", False):
                    raise  # storing failed: the caller must know nothing was recorded
                self._fail(state, status, step.name, exc)
            finally:
                state.timings_ms[step.name] = round((time.perf_counter() - t0) * 1000, 1)
        self._finish(state)
        state.timings_ms["total"] = round((time.monotonic() - started) * 1000, 1)
        return state

    @staticmethod
    def privacy_notice(state: PipelineState) -> str:
        if not state.redactions:
            return ""
        kinds = ", ".join(state.redactions)
        return f"For your privacy, I removed personal details ({kinds}) from your question."

    def _finish(self, state: PipelineState) -> None:
        """Every turn ends with a status (and the privacy notice) before it is stored, as plain
        text: any HTML the model wrote or a page title carried is removed, so no script or
        markup reaches a client, whatever it renders with."""
        if not state.stopped:
            state.stop(Status.CANNOT_ANSWER, s.message_for(Status.CANNOT_ANSWER, state))
        state.message = _MARKUP.sub("", state.message or "")
        for source in state.sources:
            source.title = _MARKUP.sub("", source.title or "")
            source.heading = _MARKUP.sub("", source.heading or "")
        notice = self.privacy_notice(state)
        if notice and not state.message.startswith(notice):
            state.message = f"{notice}\n\n{state.message}"

    @staticmethod
    def _fail(state: PipelineState, status: Status, step: str, exc: BaseException) -> None:
        state.guardrails.setdefault(
            "error", s.Verdict("error", False, f"{step}: {type(exc).__name__}")
        )
        # Whatever was found is still worth showing.
        state.sources = s._group_sources(state.prompt_chunks or state.retrieved[:3])
        for source in state.sources:
            source.used = False
        state.stop(status, s.message_for(status, state))


@dataclass
class Guards:
    """The layered guardrails (built once per process; None = the simple rules only)."""

    personal_data: Any | None = None  # guardrails.pii.PersonalDataDetector
    jailbreak: Any | None = None  # guardrails.jailbreak.JailbreakDetector
    router: Any | None = None  # guardrails.router.QuestionRouter
    screen: Any | None = None  # guardrails.llm_screen.LLMScreen


def build_guards(
    embedder: Any,
    judge: BaseChatModel | None = None,
    screen: Any | None = None,
    *,
    foreign: str = "translate",
) -> Guards:
    """The full offline guardrails, sharing the retriever's embedding model; `judge` (a capable
    server LLM) adds an LLM jailbreak check on top; `screen` (an LLMScreen) asks a language
    model about the questions the other layers would answer, and about messages in other
    languages that the jailbreak rules passed: `foreign` = "translate" (to English, for the
    English jailbreak layers), "classify" (a yes/no question) or "off"."""
    from guardrails.jailbreak import JailbreakDetector
    from guardrails.llm_checks import LLMJailbreakCheck
    from guardrails.llm_screen import LLMScreen, foreign_screen_definitions
    from guardrails.pii import personal_data_detector
    from guardrails.router import QuestionRouter, default_cache_dir
    from guardrails.translate import translator_for

    router = QuestionRouter(embedder=embedder, cache_dir=default_cache_dir())
    # the screen's model also checks text in other languages for attacks (the jailbreak
    # classifier reads English only): the yes/no check shares the screen's context; the
    # translator has a context of its own (same model file), so neither evicts the other's
    # cached prompt
    if foreign not in ("translate", "classify", "off"):
        raise ValueError(f"foreign must be translate, classify or off, not {foreign!r}")
    classify = (
        LLMScreen(screen.scorer, foreign_screen_definitions())
        if screen and foreign == "classify"
        else None
    )
    translator = translator_for(screen.scorer) if screen and foreign == "translate" else None
    return Guards(
        personal_data=personal_data_detector(),
        jailbreak=JailbreakDetector(
            embedder=embedder,
            llm_check=LLMJailbreakCheck(judge) if judge else None,
            is_non_english=router.is_non_english,
            foreign_check=classify.check if classify else None,
            translator=translator,
        ),
        router=router,
        screen=screen,
    )


def deployment_guards(
    settings: Any, embedder: Any, llm: BaseChatModel, *, injected_llm: bool = False
) -> Guards:
    """The guardrails a deployment runs, loaded and warmed up.

    The LLM jailbreak check uses `llm` only when it is a capable model: a server LLM
    (`settings.llm_base_url`), or one passed in by a caller (`injected_llm`: the evaluation
    harness's judge or a test double); the bundled local models are not reliable judges. The
    language-model screen is the one `settings.guard_screen` asks for, and none with an
    injected model (a test double is no screen)."""
    from guardrails.llm_screen import build_screen

    capable = injected_llm or bool(settings.llm_base_url)
    guards = build_guards(
        embedder,
        judge=llm if capable else None,
        screen=None if injected_llm else build_screen(settings),
        foreign=settings.guard_foreign,
    )
    warm_up_guards(guards)
    return guards


def warm_up_guards(guards: Guards) -> None:
    """Load models and train the small classifiers now, not on a user's first question."""
    if guards.personal_data is not None:
        guards.personal_data.load()
    if guards.router is not None:
        guards.router.warm_up()
    if guards.jailbreak is not None:
        guards.jailbreak.check("How much is Statutory Sick Pay?")
        if guards.jailbreak.translator is not None:  # loads it and caches its instructions
            guards.jailbreak.translator("¿Cuánto es la baja por enfermedad?")
    if guards.screen is not None:
        guards.screen.warm_up()


def build_pipeline(
    settings: Any,
    *,
    retriever: Any,
    llm: BaseChatModel,
    recorder: Callable[[PipelineState], None] | None = None,
    response_format: dict[str, Any] | None = None,
    guards: Guards | None = None,
) -> AnswerPipeline:
    guards = guards or Guards()
    pipeline = AnswerPipeline([], answer_timeout=settings.answer_timeout)
    steps: list[Any] = [
        s.ValidateQuestion(),
        s.RedactPersonalData(guards.personal_data),
        s.CheckJailbreak(guards.jailbreak),
        s.CondenseQuestion(llm),
        s.RouteQuestion(guards.router),
        s.ScreenQuestion(guards.screen, guards.router),
        s.RetrieveSections(
            retriever,
            k=settings.retrieval_k,
            min_dense_score=settings.answer_min_dense_score,
            injection_detector=guards.jailbreak,
            history_questions=settings.retrieval_history_questions,
        ),
        s.SelectEvidence(
            getattr(retriever, "embedder", None), max_chunks=settings.answer_max_chunks
        ),
        s.ComposeAnswer(
            llm,
            max_chunks=settings.answer_max_chunks,
            response_format=response_format,
            deadline=pipeline.deadline,
        ),
        s.CheckAnswer(),
    ]
    if recorder is not None:
        steps.append(StoreTurn(recorder))
    pipeline.steps = steps
    return pipeline
