"""Answer metrics judged by an LLM, with ragas 0.4's current API: `llm_factory` over an
OpenAI-compatible client and the metrics in `ragas.metrics.collections`.

- faithfulness: the answer's claims are supported by the sections the model was given;
- answer_relevancy: the answer addresses the question (needs embeddings: the local model);
- factual_correctness: claims of the answer vs the reference answer (F1 of claim overlap);
- context_precision: the retrieved sections useful for the reference are ranked first;
- context_recall: the reference's statements are found in the retrieved sections.

A judged value that fails, times out or comes back as NaN is recorded as a failure with its
reason; means are over scored values only, and the failures are counted beside them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evaluation.metrics.answers import plain_text
from evaluation.metrics.stats import finite, mean_ci

JUDGED_METRICS = (
    "faithfulness",
    "answer_relevancy",
    "factual_correctness",
    "context_precision",
    "context_recall",
)


@dataclass(frozen=True)
class JudgeConfig:
    base_url: str
    model: str
    api_key: str = "not-needed"
    timeout: float = 120.0
    max_tokens: int = 2048

    def describe(self) -> dict[str, Any]:
        from urllib.parse import urlparse

        return {
            "model": self.model,
            "server": urlparse(self.base_url).netloc or self.base_url,
            "framework": "ragas " + _ragas_version(),
            "metrics": list(JUDGED_METRICS),
            "timeout_s": self.timeout,
        }


def _ragas_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragas")
    except PackageNotFoundError:  # pragma: no cover
        return "?"


def judge_config(settings: Any) -> JudgeConfig | None:
    """The judge from settings (`judge_base_url`, `judge_model`, ...); None when not set."""
    if not settings.judge_base_url:
        return None
    return JudgeConfig(
        base_url=settings.judge_base_url,
        model=settings.judge_model,
        api_key=settings.judge_api_key or "not-needed",
        timeout=settings.judge_timeout,
        max_tokens=settings.judge_max_tokens,
    )


def judge_inputs(outcome: dict[str, Any], reference: str) -> dict[str, Any]:
    """What the judge reads from a recorded outcome: question, answer, contexts, reference."""
    prompt = [c["prompt_text"] for c in outcome.get("contexts", []) if c.get("prompt_text")]
    retrieved = [c["text"] for c in outcome.get("contexts", []) if c.get("text")]
    return {
        "question": outcome.get("condensed_question") or outcome.get("question", ""),
        "answer": plain_text(outcome.get("message", ""))
        if outcome.get("status") == "answered"
        else "",
        "prompt_contexts": prompt or retrieved,
        "retrieved_contexts": retrieved,
        "reference": reference,
    }


def applicable(inputs: dict[str, Any]) -> list[str]:
    """The judged metrics that make sense for a case (an unanswered turn has no answer to judge;
    the context metrics need a reference and something retrieved)."""
    names = []
    if inputs["answer"]:
        names += ["faithfulness", "answer_relevancy"]
        if inputs["reference"]:
            names.append("factual_correctness")
    if inputs["reference"] and inputs["retrieved_contexts"]:
        names += ["context_precision", "context_recall"]
    return names


async def _score_one(name: str, metrics: dict[str, Any], inputs: dict[str, Any]) -> Any:
    metric = metrics[name]
    if name == "faithfulness":
        return await metric.ascore(
            user_input=inputs["question"],
            response=inputs["answer"],
            retrieved_contexts=inputs["prompt_contexts"],
        )
    if name == "answer_relevancy":
        return await metric.ascore(user_input=inputs["question"], response=inputs["answer"])
    if name == "factual_correctness":
        return await metric.ascore(response=inputs["answer"], reference=inputs["reference"])
    if name == "context_precision":
        return await metric.ascore(
            user_input=inputs["question"],
            reference=inputs["reference"],
            retrieved_contexts=inputs["retrieved_contexts"],
        )
    return await metric.ascore(
        user_input=inputs["question"],
        retrieved_contexts=inputs["retrieved_contexts"],
        reference=inputs["reference"],
    )


async def _judge(config: JudgeConfig, embeddings: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    from evaluation.ragas_compat import prepare_ragas

    prepare_ragas()
    from openai import AsyncOpenAI
    from ragas.llms import llm_factory
    from ragas.metrics.collections import (
        AnswerRelevancy,
        ContextPrecisionWithReference,
        ContextRecall,
        FactualCorrectness,
        Faithfulness,
    )

    client = AsyncOpenAI(
        base_url=config.base_url,
        api_key=config.api_key,
        timeout=config.timeout,
        max_retries=1,
    )
    try:
        llm = llm_factory(
            config.model, provider="openai", client=client, max_tokens=config.max_tokens
        )
        metrics = {
            "faithfulness": Faithfulness(llm=llm),
            "answer_relevancy": AnswerRelevancy(llm=llm, embeddings=embeddings),
            "factual_correctness": FactualCorrectness(llm=llm),
            "context_precision": ContextPrecisionWithReference(llm=llm, name="context_precision"),
            "context_recall": ContextRecall(llm=llm),
        }
        out: dict[str, Any] = {}
        for name in applicable(inputs):
            try:
                result = await asyncio.wait_for(
                    _score_one(name, metrics, inputs), timeout=config.timeout
                )
                value = getattr(result, "value", result)
                if not isinstance(value, int | float) or not math.isfinite(value):
                    out[name] = {"error": f"no score ({value!r})"}
                else:
                    out[name] = {"value": float(value)}
            except TimeoutError:
                out[name] = {"error": "timeout", "timeout": True}
            except Exception as exc:  # noqa: BLE001 - a judge failure is recorded, not raised
                detail = " ".join(str(exc).split())[:200]
                out[name] = {"error": f"{type(exc).__name__}: {detail}"}
        return out
    finally:
        await client.close()


def judge_case(config: JudgeConfig, embeddings: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """`{metric: {"value": x} | {"error": reason, "timeout"?: True}}` for one case (sync)."""
    return asyncio.run(_judge(config, embeddings, inputs))


# ---------------------------------------------------------------------------- aggregation


def summarise_judged(records: Sequence[dict[str, Any]], repeats: int) -> dict[str, Any]:
    """Per metric: mean over scored values, 95% CI, and every failure counted.

    `records`: `{"key", "repeat", "metrics": {name: {"value"} | {"error"}}}`. With several
    repeats, the mean is the mean of the repeats' means and `ci95` the interval between repeats;
    `ci95_cases` is always the interval over cases (first repeat).
    """
    out: dict[str, Any] = {}
    for name in JUDGED_METRICS:
        per_repeat: dict[int, list[float]] = {}
        failed = timeouts = applicable_n = 0
        reasons: dict[str, int] = {}
        for rec in records:
            m = rec.get("metrics", {}).get(name)
            if m is None:
                continue
            applicable_n += 1
            if "value" in m:
                per_repeat.setdefault(int(rec.get("repeat", 0)), []).append(m["value"])
            else:
                failed += 1
                timeouts += bool(m.get("timeout"))
                reason = str(m.get("error", "?")).split(":")[0]
                reasons[reason] = reasons.get(reason, 0) + 1
        if not applicable_n:
            continue
        repeat_means = [sum(v) / len(v) for _, v in sorted(per_repeat.items()) if v]
        first = per_repeat.get(0, [])
        between = mean_ci(repeat_means) if len(repeat_means) >= 2 else None
        scored = sum(len(v) for v in per_repeat.values())
        out[name] = {
            "mean": (sum(repeat_means) / len(repeat_means)) if repeat_means else None,
            "ci95": between["ci95"] if between else mean_ci(first)["ci95"],
            "ci95_between": "repeats" if between else "cases",
            "repeat_means": repeat_means,
            "scored": scored,
            "failed": failed,
            "timeouts": timeouts,
            "applicable": applicable_n,
            "failure_reasons": reasons,
            "repeats": repeats,
        }
    return out


def case_judged_means(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per case key: each metric's mean over repeats, with failures counted."""
    by_case: dict[str, dict[str, list[Any]]] = {}
    for rec in records:
        for name, m in rec.get("metrics", {}).items():
            by_case.setdefault(rec["key"], {}).setdefault(name, []).append(m.get("value"))
    out: dict[str, dict[str, Any]] = {}
    for key, metrics in by_case.items():
        out[key] = {}
        for name, values in metrics.items():
            vals = finite(v for v in values if v is not None)
            out[key][name] = {
                "mean": sum(vals) / len(vals) if vals else None,
                "failed": len(values) - len(vals),
            }
    return out
