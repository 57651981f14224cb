"""A language-model screen for questions the offline layers let through.

The rules and sentence-embedding classifiers miss requests whose purpose is harmful but whose
words are ordinary ("keep a few of the lads' wages out of the payroll figures"). The screen asks
a language model a question with a few worked examples (by default: does the person want help
to do something illegal, dishonest or harmful? Yes or No), reads the model's probability of
each reply word (its labels) rather than the sampled reply, and combines it with the router's
own probability, so the thresholds in the definitions file apply.

- `LocalLetterScorer` runs the bundled 1.5B GGUF in its own small llama.cpp context: the fixed
  prompt (instructions and examples, about 600 tokens) is evaluated once and kept in the KV
  cache, so a question costs only its own tokens (about 0.5 s on 2 cores).
- `ChatLetterScorer` asks an OpenAI-compatible server for one token with `logprobs`; a server
  that returns none gives probability 1 to the letter it replied.
- `LLMScreen.check` returns a Verdict; it fails open (passes, confidence 0) when the model errors,
  since every offline layer has already run.

Definitions (prompt, examples, letters, thresholds) live in definitions/llm_screen.yaml.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from chat_api.types import Verdict
from guardrails.definitions import _read

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScreenDefinitions:
    version: str
    system: str
    user: str  # template with {message}
    labels: dict[str, str]  # letter -> route ("answer", "harmful", "jailbreak")
    examples: tuple[tuple[str, str], ...]  # (message, letter)
    thresholds: dict[str, float]  # route -> minimum (combined) score to refuse
    max_chars: int
    llm_weight: float = 1.0  # weight of the model's probability against the router's prior

    def messages(self, text: str) -> list[dict[str, str]]:
        """The chat: instructions, the worked examples, then `text`."""
        out = [{"role": "system", "content": self.system}]
        for message, letter in self.examples:
            out.append({"role": "user", "content": self.user.format(message=message)})
            out.append({"role": "assistant", "content": letter})
        out.append({"role": "user", "content": self.user.format(message=text)})
        return out


@cache
def screen_definitions() -> ScreenDefinitions:
    return _screen_definitions("llm_screen.yaml")


@cache
def foreign_screen_definitions() -> ScreenDefinitions:
    """The check for attacks written in other languages (llm_foreign_screen.yaml)."""
    return _screen_definitions("llm_foreign_screen.yaml")


def _screen_definitions(name: str) -> ScreenDefinitions:
    data, version = _read(name)
    labels = {str(k): str(v) for k, v in data["labels"].items()}
    examples = tuple((str(e["message"]).strip(), str(e["label"])) for e in data["examples"])
    for _, letter in examples:
        if letter not in labels:
            raise ValueError(f"{name}: example label {letter!r} is not in labels")
    return ScreenDefinitions(
        version=version,
        system=str(data["system"]).strip(),
        user=str(data["user"]).strip(),
        labels=labels,
        examples=examples,
        thresholds={str(k): float(v) for k, v in data["thresholds"].items()},
        max_chars=int(data.get("max_chars", 1500)),
        llm_weight=float(data.get("llm_weight", 1.0)),
    )


class LetterScorer(Protocol):
    name: str

    def load(self) -> None: ...

    def probabilities(self, defs: ScreenDefinitions, text: str) -> dict[str, float]: ...


def _softmax(logits: dict[str, float]) -> dict[str, float]:
    top = max(logits.values())
    exp = {k: math.exp(v - top) for k, v in logits.items()}
    total = sum(exp.values())
    return {k: v / total for k, v in exp.items()}


def guard_context(role: str, model_path: Path, n_ctx: int, n_threads: int | None) -> Any:
    """A llama.cpp context of the GGUF at `model_path` for one guardrail `role` ("screen",
    "translate"): kept apart from the answer model's and from each other's, so no role evicts
    another's cached prompt. Loaded once per process and role."""
    import os

    from chat_api.llm import _load

    threads = n_threads or os.cpu_count() or 1
    path = str(Path(model_path).resolve())
    return _load(
        (role, path, n_ctx, threads),
        model_path=path,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=512,
        n_gpu_layers=0,
        verbose=False,
    )


class LocalLetterScorer:
    """The bundled GGUF in a llama.cpp context of its own (the answer model keeps its cache)."""

    def __init__(
        self, model_path: Path | str, *, n_ctx: int = 2048, n_threads: int | None = None
    ) -> None:
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.name = f"local:{self.model_path.stem}"
        self._loaded: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._loaded is None:
            self._loaded = guard_context("screen", self.model_path, self.n_ctx, self.n_threads)
        return self._loaded

    def load(self) -> None:
        self._load()

    def _tokens(self, loaded: Any, messages: list[dict[str, str]]) -> list[int]:
        if loaded.formatter is None:  # pragma: no cover - every bundled GGUF has a template
            raise RuntimeError("the model file has no chat template")
        result = loaded.formatter(messages=messages)
        return loaded.llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )

    def _letter_ids(self, loaded: Any, letters: list[str]) -> list[int]:
        ids = []
        for letter in letters:
            toks = loaded.llama.tokenize(letter.encode(), add_bos=False, special=False)
            if len(toks) != 1:
                raise ValueError(f"label {letter!r} is not a single token for this model")
            ids.append(toks[0])
        return ids

    def probabilities(self, defs: ScreenDefinitions, text: str) -> dict[str, float]:
        loaded = self._load()
        letters = list(defs.labels)
        with loaded.lock:
            llama = loaded.llama
            tokens = self._tokens(loaded, defs.messages(text))
            if len(tokens) >= self.n_ctx:
                raise ValueError(f"screen prompt of {len(tokens)} tokens > context {self.n_ctx}")
            # Keep the longest common prefix with what the context already holds (the fixed
            # instructions and examples); evaluate only the rest.
            live = llama.input_ids[: llama.n_tokens].tolist()
            keep = 0
            limit = min(len(live), len(tokens) - 1)
            while keep < limit and live[keep] == tokens[keep]:
                keep += 1
            llama.n_tokens = keep
            llama.eval(tokens[keep:])
            logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),))  # noqa: SLF001
            ids = self._letter_ids(loaded, letters)
            return _softmax({k: float(logits[i]) for k, i in zip(letters, ids, strict=True)})


class ChatLetterScorer:
    """An OpenAI-compatible chat model (LangChain) asked for one token with logprobs."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.name = f"server:{getattr(llm, 'model_name', None) or type(llm).__name__}"

    def load(self) -> None:
        return None

    def probabilities(self, defs: ScreenDefinitions, text: str) -> dict[str, float]:
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
        messages = [kinds[m["role"]](m["content"]) for m in defs.messages(text)]
        reply = self.llm.invoke(messages, max_tokens=1, logprobs=True, top_logprobs=10)
        letters = list(defs.labels)
        content = reply.content if isinstance(reply.content, str) else ""
        top = ((reply.response_metadata or {}).get("logprobs") or {}).get("content") or []
        if top and top[0].get("top_logprobs"):
            seen = {
                str(t["token"]).strip(): float(t["logprob"])
                for t in top[0]["top_logprobs"]
                if str(t["token"]).strip() in letters
            }
            if seen:
                floor = min(seen.values()) - 10.0
                return _softmax({k: seen.get(k, floor) for k in letters})
        letter = str(content).strip()[:1].upper()
        if letter not in letters:
            raise ValueError(f"screen reply {content!r} is not one of {letters}")
        return {k: 1.0 if k == letter else 0.0 for k in letters}


class LLMScreen:
    """Verdict on a question the offline layers would answer: harmful, jailbreak, or fine."""

    name = "llm_screen"

    def __init__(self, scorer: LetterScorer, definitions: ScreenDefinitions | None = None):
        self.scorer = scorer
        self.definitions = definitions or screen_definitions()

    def warm_up(self) -> None:
        """Load the model and evaluate the fixed part of the prompt."""
        self.scorer.load()
        self.check("How much is Statutory Sick Pay?", prior=None)

    def check(self, text: str, prior: dict[str, float] | None = None) -> Verdict:
        """`prior`: the offline router's probability for a route ("harmful": its binary
        classifier's), combined with the model's as the definitions say. A route whose
        threshold the prior makes unreachable does not need the model; when none is reachable
        the model is not asked at all."""
        defs = self.definitions
        w = defs.llm_weight
        prior = prior or {}

        def combined(route: str, p_llm: float) -> float:
            return (1 - w) * prior[route] + w * p_llm if route in prior else p_llm

        reachable = [r for r, t in defs.thresholds.items() if combined(r, 1.0) >= t]
        base: dict[str, Any] = {"model": self.scorer.name}
        if prior:
            base["prior"] = {k: round(v, 4) for k, v in prior.items()}
        if not reachable:
            return Verdict(
                self.name,
                True,
                "not asked: the router's probability leaves no threshold reachable",
                confidence=1.0,
                version=defs.version,
                details={**base, "asked": False},
            )
        try:
            probs = self.scorer.probabilities(defs, text[: defs.max_chars])
        except Exception as exc:  # noqa: BLE001 - fail open: the offline layers already ran
            log.warning("LLM screen failed: %s", exc)
            return Verdict(
                self.name,
                True,
                f"screen unavailable: {type(exc).__name__}",
                confidence=0.0,
                version=defs.version,
                details={**base, "asked": True},
            )
        by_route = {defs.labels[k]: round(v, 4) for k, v in probs.items()}
        scores = {r: round(combined(r, by_route.get(r, 0.0)), 4) for r in reachable}
        details: dict[str, Any] = {
            **base,
            "asked": True,
            "probabilities": by_route,
            "scores": scores,
        }
        flagged = [(r, v) for r, v in scores.items() if v >= defs.thresholds[r]]
        if flagged:
            route, v = max(flagged, key=lambda kv: kv[1])
            return Verdict(
                self.name,
                False,
                f"{route} score {v:.2f} >= {defs.thresholds[route]:.2f}",
                confidence=v,
                version=defs.version,
                details={**details, "route": route},
            )
        return Verdict(
            self.name,
            True,
            confidence=1.0 - max(scores.values(), default=0.0),
            version=defs.version,
            details=details,
        )


def build_screen(settings: Any) -> LLMScreen | None:
    """The screen `settings.guard_screen` asks for: "auto" = the configured server LLM when
    there is one, else the bundled 1.5B model (whatever `llm_profile` says: the 0.5B is no
    judge); "off" = none."""
    mode = settings.guard_screen
    if mode == "off":
        return None
    if mode == "server" or (mode == "auto" and settings.llm_base_url):
        if not settings.llm_base_url:
            raise ValueError("GOVCHAT_GUARD_SCREEN=server needs GOVCHAT_LLM_BASE_URL")
        from chat_api.llm import server_chat_model

        llm = server_chat_model(
            settings,
            timeout=min(settings.llm_timeout, 20.0),
            temperature=0.0,
            max_tokens=None,
            streaming=False,
            stream_usage=False,
        )
        return LLMScreen(ChatLetterScorer(llm))
    from chat_api.llm import ensure_gguf

    path = ensure_gguf("default", settings.data_dir / "models")
    return LLMScreen(LocalLetterScorer(path, n_threads=settings.llm_threads))


__all__ = [
    "build_screen",
    "ChatLetterScorer",
    "LLMScreen",
    "LetterScorer",
    "LocalLetterScorer",
    "ScreenDefinitions",
    "foreign_screen_definitions",
    "screen_definitions",
]
