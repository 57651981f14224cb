"""The answer pipeline's steps. Each reads and writes the PipelineState and may stop the turn.

A step is any object with a `name` and `run(state, emit)`. `emit(event, data)` sends a
Server-Sent Event to a streaming client (sources as soon as they are known, answer tokens).
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.utils.json import parse_partial_json

from chat_api.prompts import Prompt, load_prompt
from chat_api.types import PipelineState, RetrievedChunk, Source, Status, Turn, Verdict
from guardrails import input as input_guards
from guardrails import output as output_guards
from guardrails.definitions import input_rules, messages, output_rules

Emit = Callable[[str, dict[str, Any]], None]


class Step(Protocol):
    name: str

    def run(self, state: PipelineState, emit: Emit) -> None: ...


def message_for(status: Status | str, state: PipelineState | None = None) -> str:
    texts, _ = messages()
    template = texts.get(str(status), texts["cannot_answer"])
    question = state.condensed_question or state.redacted_question if state else ""
    return template.format(
        keywords=urllib.parse.quote_plus(question[:200]),
        max_chars=input_rules().max_question_chars,
    )


def _deadline_left(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


class LLMTimeout(Exception):
    pass


# ---------------------------------------------------------------------------- input


class ValidateQuestion:
    name = "validate"

    def run(self, state: PipelineState, emit: Emit) -> None:
        verdict = input_guards.check_length(state.question.text)
        state.guardrails["length"] = verdict
        state.versions["guardrails"] = verdict.version
        if not verdict.passed:
            state.stop(Status.INVALID_INPUT, message_for(Status.INVALID_INPUT))


class RedactPersonalData:
    """Replace personal data by its kind before anything is stored, logged, searched or sent.

    `detector` (guardrails.pii.PersonalDataDetector: Presidio + UK recognizers) when given;
    otherwise the always-available pattern rules."""

    name = "redact"

    def __init__(self, detector: Any | None = None):
        self.detector = detector

    def run(self, state: PipelineState, emit: Emit) -> None:
        text = state.question.text
        result = (
            self.detector.redact(text) if self.detector else input_guards.redact_personal_data(text)
        )
        state.redacted_question = result.text
        state.redactions = result.kinds
        state.guardrails["personal_data"] = result.verdict
        if result.kinds:
            state.route = "pii"


class CheckJailbreak:
    """Rules, then (when given) the layered detector: normalisation + rules + classifier."""

    name = "jailbreak"

    def __init__(self, detector: Any | None = None):
        self.detector = detector

    def run(self, state: PipelineState, emit: Emit) -> None:
        text = state.redacted_question
        verdict = self.detector.check(text) if self.detector else input_guards.check_injection(text)
        state.guardrails["jailbreak"] = verdict
        if not verdict.passed:
            state.route = "jailbreak"
            state.stop(Status.JAILBREAK, message_for(Status.JAILBREAK))


class CondenseQuestion:
    """Rewrite a follow-up as a standalone question; no LLM call on a first question."""

    name = "condense"

    def __init__(self, llm: BaseChatModel, max_turns: int = 3, prompt: Prompt | None = None):
        self.llm = llm
        self.max_turns = max_turns
        self.prompt = prompt or load_prompt("condense")

    def run(self, state: PipelineState, emit: Emit) -> None:
        history = state.question.history[-self.max_turns :]
        if not history:
            state.condensed_question = state.redacted_question
            return
        state.versions["condense_prompt"] = self.prompt.version
        text = "\n".join(
            f"User: {t.question}\nAssistant: {_shorten(t.answer, 300)}" for t in history
        )
        messages_ = [
            SystemMessage(self.prompt.system),
            HumanMessage(self.prompt.user.format(history=text, question=state.redacted_question)),
        ]
        reply = self.llm.invoke(messages_, max_tokens=80)
        _count_tokens(state, reply, "condense")
        condensed = _first_line(str(reply.content))
        state.condensed_question = condensed or state.redacted_question


_ROUTE_STATUS = {
    "greeting": Status.GREETING,
    "acknowledgement": Status.ACKNOWLEDGEMENT,
    "off_topic": Status.OFF_TOPIC,
    "harmful": Status.HARMFUL,
    "advice_opinion": Status.ADVICE_OPINION,
    "non_english": Status.NON_ENGLISH,
    "crisis": Status.CRISIS,
    "needs_account": Status.NEEDS_ACCOUNT,
    "unclear": Status.UNCLEAR,
}


# routes taken from the English translation of a message in another language (the others keep
# the non-English reply: the service answers in English)
_TRANSLATED_ROUTES = ("harmful", "crisis")


class RouteQuestion:
    """Decide whether to search and answer: a genuine question, or a canned reply.

    `router` (guardrails.router.QuestionRouter) when given; otherwise greeting/thanks rules. A
    message in another language is also routed by its English translation, when the jailbreak
    step made one (see `_translated`)."""

    name = "route"

    def __init__(self, router: Any | None = None):
        self.router = router

    def run(self, state: PipelineState, emit: Emit) -> None:
        text = state.condensed_question or state.redacted_question
        if self.router is not None:
            decision = self.router.route(text)
            if decision.route == "non_english":
                decision = self._translated(state) or decision
            route = decision.route
            state.guardrails["route"] = decision.verdict
            if route in _ROUTE_STATUS:
                state.route = route
                status = _ROUTE_STATUS[route]
                reply = self.router.message(decision, keywords=text) or message_for(status, state)
                state.stop(status, reply)
            return
        route = input_guards.social_route(text) or "answer"
        if route in _ROUTE_STATUS:
            state.route = route
            state.stop(_ROUTE_STATUS[route], message_for(_ROUTE_STATUS[route], state))

    def _translated(self, state: PipelineState) -> Any | None:
        """A message in another language gets the non-English reply, unless its English
        translation (made by the jailbreak step, guardrails.translate) routes as harmful, or as
        crisis by the crisis rules: those get the reply an English message would (the crisis
        one signposts help)."""
        jailbreak = state.guardrails.get("jailbreak")
        translation = (jailbreak.details or {}).get("translation") if jailbreak else None
        if not translation or translation.get("refused") or not translation.get("text"):
            return None
        decision = self.router.route(translation["text"])
        if decision.route not in _TRANSLATED_ROUTES:
            return None
        if decision.route == "crisis" and decision.verdict.details.get("layer") != "rule":
            # the crisis classifier is recall-first for English; a small model's garbled
            # translation of a genuine question set it off (ho25), the crisis rules do not
            return None
        decision.verdict.reason = f"translated: {decision.verdict.reason}"
        decision.verdict.details = {**decision.verdict.details, "translated": True}
        return decision


class ScreenQuestion:
    """The language-model screen (guardrails.llm_screen.LLMScreen) on a question routed to be
    answered: refuses it as harmful or as a jailbreak when the model is confident enough."""

    name = "screen"

    def __init__(self, screen: Any | None = None, router: Any | None = None):
        self.screen = screen
        self.router = router

    def run(self, state: PipelineState, emit: Emit) -> None:
        if self.screen is None or state.route != "answer":
            return
        text = state.condensed_question or state.redacted_question
        routed = state.guardrails.get("route")
        p_harmful = routed.details.get("harmful_binary") if routed is not None else None
        prior = {"harmful": float(p_harmful)} if p_harmful is not None else None
        verdict = self.screen.check(text, prior=prior)
        state.guardrails["llm_screen"] = verdict
        state.versions["llm_screen"] = verdict.version
        if verdict.passed:
            return
        route = verdict.details.get("route", "harmful")
        state.route = route
        if route == "jailbreak":
            state.stop(Status.JAILBREAK, message_for(Status.JAILBREAK))
            return
        status = _ROUTE_STATUS.get(route, Status.HARMFUL)
        reply = self.router.message(route) if self.router is not None else ""
        state.stop(status, reply or message_for(status, state))


# ---------------------------------------------------------------------------- retrieval


_WORDS = re.compile(r"[^\W\d_]{3,}")


class RetrieveSections:
    name = "retrieve"

    def __init__(
        self,
        retriever: Any,
        k: int = 5,
        min_dense_score: float = 0.4,
        injection_detector: Any | None = None,
        history_questions: int = 2,
    ):
        self.retriever = retriever
        self.k = k
        self.min_dense_score = min_dense_score
        self.injection_detector = injection_detector
        self.history_questions = history_questions

    def query(self, state: PipelineState) -> str:
        """The search text: the condensed question, plus, for a follow-up, the user's last
        questions that the rewrite did not already spell out. A small model's rewrite often drops
        the topic ("Could I still be a director if I got one?"); the earlier questions carry it,
        for BM25 and the embedding alike."""
        n = self.history_questions
        earlier = [t.question for t in state.question.history[-n:]] if n else []
        query = state.condensed_question
        for question in earlier:
            words = set(_WORDS.findall(question.lower()))
            known = set(_WORDS.findall(query.lower()))
            # Only what the rewrite left out: repeating words it kept would skew the ranking.
            if words and len(words - known) / len(words) > 0.4:
                query = f"{query} {question}"
        return query.strip()

    def _injected(self, text: str) -> Verdict:
        if self.injection_detector is not None:
            return self.injection_detector.check_retrieved(text)
        return input_guards.check_injection(text)

    def run(self, state: PipelineState, emit: Emit) -> None:
        try:
            state.search_query = self.query(state)
            results = self.retriever.search(state.search_query, self.k, explain=False)
        except ValueError:  # InvalidQuery: nothing searchable left after redaction
            state.stop(Status.CANNOT_ANSWER, message_for(Status.CANNOT_ANSWER, state))
            return
        except Exception:  # noqa: BLE001 - the index being down must not be a 500
            state.stop(Status.UNAVAILABLE, message_for(Status.UNAVAILABLE))
            return
        state.retrieved = [RetrievedChunk.from_search_result(r) for r in results]
        relevant = [
            c for c in state.retrieved if (c.stages.get("dense") or 0.0) >= self.min_dense_score
        ]
        # Indirect prompt injection: page text that tries to instruct the model never reaches it.
        flagged = {c.chunk_id: v for c in relevant if not (v := self._injected(c.text)).passed}
        if flagged:
            state.guardrails["indirect_injection"] = Verdict(
                "indirect_injection",
                False,
                f"dropped {len(flagged)} retrieved section(s)",
                details={"chunks": {cid: v.reason for cid, v in flagged.items()}},
            )
            relevant = [c for c in relevant if c.chunk_id not in flagged]
        if not relevant:
            state.stop(Status.CANNOT_ANSWER, message_for(Status.CANNOT_ANSWER, state))
            return
        state.retrieved = relevant


# ---------------------------------------------------------------------------- evidence

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z£0-9])")


def _evidence_units(text: str) -> list[str]:
    """Lines of a section (list items and table rows stay whole), long lines cut at sentences."""
    units: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if len(line) > 300 and not line.startswith(("-", "|")):
            units.extend(p.strip() for p in _SENTENCE_END.split(line) if p.strip())
        else:
            units.append(line)
    return units


class SelectEvidence:
    """Keep only the sentences most related to the question, so the small model reads less and
    keeps what matters. Without an embedder, whole sections are used (trimmed)."""

    name = "select_evidence"

    def __init__(
        self,
        embedder: Any | None,
        *,
        max_chunks: int = 4,
        max_units: int = 10,
        max_units_per_chunk: int = 5,
        max_chunk_chars: int = 900,
    ):
        self.embedder = embedder
        self.max_chunks = max_chunks
        self.max_units = max_units
        self.max_units_per_chunk = max_units_per_chunk
        self.max_chunk_chars = max_chunk_chars

    def run(self, state: PipelineState, emit: Emit) -> None:
        best_line: dict[str, str] = {}
        try:
            self._select(state, best_line)
        finally:
            # The user sees the matched sections at once, each with its best-matching line.
            emit(
                "sources",
                {
                    "sources": [
                        {
                            "url": c.url,
                            "title": c.title,
                            "heading": c.heading,
                            "excerpt": _shorten(best_line.get(c.chunk_id) or c.text, 240),
                        }
                        for c in state.retrieved
                    ]
                },
            )

    def _select(self, state: PipelineState, best_line: dict[str, str]) -> None:
        chunks = state.retrieved[: self.max_chunks]
        if self.embedder is None:
            state.prompt_chunks = _trimmed(chunks, self.max_chunk_chars)
            return
        units = [
            (ci, ui, u)
            for ci, c in enumerate(chunks)
            for ui, u in enumerate(_evidence_units(c.text))
        ]
        if not units:
            state.prompt_chunks = []
            return
        vectors = self.embedder.embed([state.condensed_question] + [u for _, _, u in units])
        scores = vectors[1:] @ vectors[0]
        # A small bonus for the better-ranked sections: retrieval already weighed whole sections.
        ranked = sorted(range(len(units)), key=lambda i: -(float(scores[i]) - 0.02 * units[i][0]))
        chosen: dict[int, list[int]] = {}
        for i in ranked:
            best_line.setdefault(chunks[units[i][0]].chunk_id, units[i][2])
        count = 0
        for i in ranked:
            ci, ui, _ = units[i]
            if count >= self.max_units:
                break
            if len(chosen.get(ci, [])) >= self.max_units_per_chunk:
                continue
            chosen.setdefault(ci, []).append(ui)
            count += 1
        prompt_chunks = []
        for ci in sorted(chosen):
            lines = _evidence_units(chunks[ci].text)
            keep = sorted(set(chosen[ci]))
            # A list or table needs its lead-in line ("You must:", a header row) to make sense.
            for ui in list(keep):
                if lines[ui].startswith(("-", "|")):
                    lead = next(
                        (
                            j
                            for j in range(ui - 1, -1, -1)
                            if not lines[j].startswith(("-", "|", "---"))
                        ),
                        None,
                    )
                    if lead is not None and lead not in keep:
                        keep.append(lead)
                    header = next((j for j in range(0, ui) if lines[j].startswith("|")), None)
                    if lines[ui].startswith("|") and header is not None and header not in keep:
                        keep.append(header)
            text = "\n".join(lines[j] for j in sorted(keep))
            prompt_chunks.append(_with_text(chunks[ci], text))
        state.prompt_chunks = prompt_chunks


def _trimmed(chunks: list[RetrievedChunk], max_chars: int) -> list[RetrievedChunk]:
    """Whole sections, shortened, when no evidence lines were selected."""
    return [_with_text(c, _shorten(c.text, max_chars)) for c in chunks]


def _with_text(chunk: RetrievedChunk, text: str) -> RetrievedChunk:
    from dataclasses import replace

    return replace(chunk, text=text)


# ---------------------------------------------------------------------------- compose


ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "complete": {"type": "boolean"},
        "sources": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["answer", "complete", "sources"],
}


class ComposeAnswer:
    """Ask the LLM for a structured answer from the best few chunks, streaming the text."""

    name = "compose"

    def __init__(
        self,
        llm: BaseChatModel,
        *,
        max_chunks: int = 3,
        max_chunk_chars: int = 900,
        response_format: dict[str, Any] | None = None,
        prompt: Prompt | None = None,
        deadline: Callable[[], float | None] = lambda: None,
    ):
        self.llm = llm
        self.max_chunks = max_chunks
        self.max_chunk_chars = max_chunk_chars
        self.response_format = response_format
        self.prompt = prompt or load_prompt("compose")
        self.deadline = deadline
        from chat_api.llm import model_identity

        self.model_name = model_identity(llm)

    def run(self, state: PipelineState, emit: Emit) -> None:
        state.versions["compose_prompt"] = self.prompt.version
        state.llm_model = self.model_name
        if not state.prompt_chunks:
            state.prompt_chunks = _trimmed(state.retrieved[: self.max_chunks], self.max_chunk_chars)
        context = "\n\n".join(
            f"[link_{i}] {c.title}{' > ' + ' > '.join(c.heading_trail) if c.heading_trail else ''}"
            f"\n{c.text}"
            for i, c in enumerate(state.prompt_chunks, 1)
        )
        msgs = [
            SystemMessage(self.prompt.system),
            HumanMessage(
                self.prompt.user.format(context=context, question=state.condensed_question)
            ),
        ]
        kwargs: dict[str, Any] = {}
        if self.response_format:
            kwargs["response_format"] = self.response_format
        buffer, streamed = "", ""
        last = None
        deadline = self.deadline()
        for chunk in self.llm.stream(msgs, **kwargs):
            last = chunk if last is None else last + chunk
            buffer += str(chunk.content)
            partial = _parse_answer(buffer)
            text = partial.get("answer") if isinstance(partial, dict) else None
            if isinstance(text, str) and text.startswith(streamed) and len(text) > len(streamed):
                emit("token", {"text": text[len(streamed) :]})
                streamed = text
            left = _deadline_left(deadline)
            if left is not None and left <= 0:
                raise LLMTimeout("answer deadline passed while generating")
        if last is not None:
            _count_tokens(state, last, "compose")
        finish = (last.response_metadata or {}).get("finish_reason") if last is not None else None
        if not finish and buffer.strip() and not _is_whole_json(buffer):
            # The stream ended with no finish reason, mid-reply: the connection was cut.
            raise LLMStreamCut(f"the model's reply stopped part-way: {buffer[-80:]!r}")
        parsed = _parse_answer(buffer, final=True)
        if not isinstance(parsed, dict) or not isinstance(parsed.get("answer"), str):
            raise ValueError(f"the model's reply is not the expected JSON: {buffer[:200]!r}")
        state.answer_markdown = parsed["answer"].strip()
        state.complete = bool(parsed.get("complete", False))
        tokens = [s for s in parsed.get("sources") or [] if isinstance(s, str)]
        # Tokens linked in the text count as used even if the model forgot to list them.
        tokens += re.findall(r"\((link_\d+)\)", state.answer_markdown)
        used = []
        for t in tokens:
            m = re.fullmatch(r"\[?(link_\d+)\]?", t.strip())
            if m:
                i = int(m.group(1).split("_")[1])
                if 1 <= i <= len(state.prompt_chunks):
                    cid = state.prompt_chunks[i - 1].chunk_id
                    if cid not in used:
                        used.append(cid)
        state.used_source_ids = used


class LLMStreamCut(RuntimeError):
    """The model's streamed reply ended part-way (no finish reason, unfinished JSON)."""


def _is_whole_json(buffer: str) -> bool:
    text = buffer.strip()
    if text.startswith("```"):
        text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text)
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def _parse_answer(buffer: str, final: bool = False) -> Any:
    text = buffer.strip()
    if text.startswith("```"):
        text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text)
    if final:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    try:
        return parse_partial_json(text)
    except Exception:  # noqa: BLE001 - a partial buffer may not parse yet
        return None


# ---------------------------------------------------------------------------- output


class CheckAnswer:
    """Enforce grounding: real links only, figures from the sources, refusal when unsure."""

    name = "output_checks"

    def run(self, state: PipelineState, emit: Emit) -> None:
        chunks = state.prompt_chunks
        token_urls = {f"link_{i}": c.url for i, c in enumerate(chunks, 1)}
        links = output_guards.ground_links(
            state.answer_markdown, token_urls, {c.url for c in chunks}
        )
        used = [c for c in chunks if c.chunk_id in state.used_source_ids]
        # Small models cite the wrong token: a source whose link is in the text, or whose
        # figures or wording the answer repeats, was used too.
        for c in chunks:
            if c not in used and (c.url in links.kept or _supports(c.text, links.markdown)):
                used.append(c)
        state.guardrails["links"] = Verdict(
            "links",
            True,
            f"dropped {len(links.dropped)} link(s)" if links.dropped else "",
            details={"dropped": links.dropped} if links.dropped else {},
        )
        if not state.complete or not used:
            state.guardrails["answerable"] = Verdict(
                "answerable",
                False,
                "model marked the answer incomplete" if not state.complete else "no source used",
            )
            state.stop(Status.CANNOT_ANSWER, message_for(Status.CANNOT_ANSWER, state))
            return
        # Figures are checked against all the evidence the model was given; a sentence with a
        # figure that is not there is removed, and if nothing useful is left, no answer.
        evidence = "\n".join(f"{c.title} {' '.join(c.heading_trail)} {c.text}" for c in chunks)
        grounded = output_guards.remove_ungrounded_sentences(links.markdown, evidence)
        state.guardrails["figures"] = Verdict(
            "figures",
            not grounded.removed,
            f"removed {len(grounded.removed)} sentence(s); not in the sources: "
            f"{', '.join(grounded.missing)}"
            if grounded.removed
            else "",
            details={"removed": len(grounded.removed)} if grounded.removed else {},
        )
        if not output_guards.has_substance(grounded.markdown):
            state.stop(Status.CANNOT_ANSWER, message_for(Status.CANNOT_ANSWER, state))
            return
        state.versions["output_guardrails"] = output_rules().version
        for verdict in (
            output_guards.check_personal_data_in_answer(grounded.markdown),
            output_guards.check_advice_opinion(grounded.markdown),
            output_guards.check_forbidden_terms(grounded.markdown),
        ):
            state.guardrails[verdict.name] = verdict
            if not verdict.passed:
                state.stop(Status.OUTPUT_BLOCKED, message_for(Status.OUTPUT_BLOCKED, state))
                return
        state.sources = _group_sources(used)
        state.stop(Status.ANSWERED, grounded.markdown)


_WORD = re.compile(r"[a-z0-9£%.]+")


def _supports(evidence: str, answer: str, threshold: float = 0.6) -> bool:
    """True when the answer repeats one of the evidence's figures, or most of one of its lines."""
    answer_figures = output_guards.figures_in(answer)
    if any(f in answer_figures for f in output_guards.figures_in(evidence) if not f.isdigit()):
        return True
    answer_words = set(_WORD.findall(answer.lower()))
    for line in evidence.lower().splitlines():
        words = {w for w in _WORD.findall(line) if len(w) > 3}
        if len(words) >= 5 and len(words & answer_words) / len(words) >= threshold:
            return True
    return False


def _group_sources(chunks: list[RetrievedChunk]) -> list[Source]:
    """One entry per section, pages kept together in the order first used."""
    order: dict[str, int] = {}
    for c in chunks:
        order.setdefault(c.base_path, len(order))
    seen: set[str] = set()
    out = []
    for c in sorted(chunks, key=lambda c: order[c.base_path]):
        if c.url in seen:
            continue
        seen.add(c.url)
        out.append(
            Source(
                url=c.url,
                title=c.title,
                heading=c.heading,
                chunk_id=c.chunk_id,
                excerpt=_shorten(c.text, 240),
                score=c.score,
            )
        )
    return out


# ---------------------------------------------------------------------------- helpers


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split()) if "\n" not in text else text.strip()
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        line = line.strip().strip('"').strip()
        if line:
            return line.removeprefix("Standalone question:").strip()
    return ""


def _count_tokens(state: PipelineState, message: Any, step: str) -> None:
    usage = getattr(message, "usage_metadata", None) or {}
    for key in ("input_tokens", "output_tokens"):
        if usage.get(key):
            state.tokens[f"{step}_{key}"] = state.tokens.get(f"{step}_{key}", 0) + usage[key]


__all__ = [
    "CheckAnswer",
    "CheckJailbreak",
    "ComposeAnswer",
    "CondenseQuestion",
    "Emit",
    "LLMTimeout",
    "RedactPersonalData",
    "RetrieveSections",
    "RouteQuestion",
    "ScreenQuestion",
    "Step",
    "Turn",
    "ValidateQuestion",
    "message_for",
]
