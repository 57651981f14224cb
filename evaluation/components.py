"""Build the real pipeline for an evaluation run (as the API does), and describe the run's
configuration: models, prompt and guardrail versions, corpus snapshot, code version."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govchat.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Components:
    """What the runner needs: a pipeline per worker, the recording retriever, the index's URLs."""

    make_pipeline: Callable[[], Any]
    retriever: Any  # evaluation.runner.RecordingRetriever
    embedder: Any
    index_urls: set[str]
    corpus: dict[str, Any]
    llm_identity: str
    local_llm: bool
    closers: list[Callable[[], None]] = field(default_factory=list)

    def in_index(self, url: str) -> bool:
        return url in self.index_urls

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def corpus_description(store: Any, settings: Settings) -> tuple[dict[str, Any], set[str]]:
    """The indexed corpus: size, a fingerprint of every chunk's digest, the newest page date,
    and the set of chunk URLs (for citation checks)."""
    chunks = store.stored_chunks(fields=("url", "exact_path", "public_updated_at", "indexed_at"))
    digest = hashlib.sha256()
    for c in sorted(chunks, key=lambda c: c.chunk_id):
        digest.update(f"{c.chunk_id}:{c.digest}\n".encode())
    dates = [str(c.payload.get("public_updated_at") or "") for c in chunks]
    indexed = [str(c.payload.get("indexed_at") or "") for c in chunks]
    return (
        {
            "collection": settings.collection,
            "qdrant": settings.qdrant_url or str(settings.qdrant_path),
            "chunks": len(chunks),
            "pages": len({c.base_path for c in chunks}),
            "fingerprint": digest.hexdigest()[:16],
            "newest_page_date": max((d for d in dates if d), default=None),
            "last_indexed_at": max((d for d in indexed if d), default=None),
            "source": settings.source,
        },
        {str(c.payload.get("url")) for c in chunks if c.payload.get("url")},
    )


def build_components(settings: Settings, llm: Any | None = None) -> Components:
    """The real components, as `chat_api.services.build_services` wires them (full offline
    guardrails, the language-model screen, and the LLM jailbreak check only with a server LLM),
    without storing anything.
    `llm` replaces the configured chat model (tests pass a fake at this boundary)."""
    from chat_api.llm import build_chat_model, json_schema_format, model_identity
    from chat_api.pipeline import build_pipeline, deployment_guards
    from chat_api.steps import ANSWER_SCHEMA
    from evaluation.runner import RecordingRetriever, serialise_llm_steps
    from govchat.services import build_retriever, open_store

    store = open_store(settings)
    closers: list[Callable[[], None]] = [store.client.close]
    try:
        corpus, urls = corpus_description(store, settings)
        inner = build_retriever(settings, store)
        retriever = RecordingRetriever(inner)
        local = llm is None and not settings.llm_base_url
        model = llm if llm is not None else build_chat_model(settings)
        guards = deployment_guards(settings, inner.embedder, model, injected_llm=llm is not None)
    except BaseException:
        store.client.close()
        raise
    lock = threading.Lock()
    response_format = json_schema_format("govuk_answer", ANSWER_SCHEMA)

    def make_pipeline() -> Any:
        pipeline = build_pipeline(
            settings,
            retriever=retriever,
            llm=model,
            response_format=response_format,
            guards=guards,
        )
        return serialise_llm_steps(pipeline, lock) if local else pipeline

    return Components(
        make_pipeline=make_pipeline,
        retriever=retriever,
        embedder=inner.embedder,
        index_urls=urls,
        corpus=corpus,
        llm_identity=model_identity(model),
        local_llm=local,
        closers=closers,
    )


# ---------------------------------------------------------------------------- configuration


def code_version() -> dict[str, Any]:
    """The git commit of the code (and whether the tree had changes), or the package version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("govchat")
    except PackageNotFoundError:  # pragma: no cover
        pkg = "unknown"
    out: dict[str, Any] = {"package": pkg, "python": platform.python_version()}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode == 0:
            out["commit"] = commit.stdout.strip()
            out["dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def definition_versions() -> dict[str, Any]:
    """Versions (declared + content hash) of the prompts and every guardrail definition file."""
    import yaml

    from chat_api.prompts import load_prompt
    from guardrails.definitions import DEFINITIONS_DIR

    guardrails: dict[str, str] = {}
    for path in sorted(DEFINITIONS_DIR.glob("*.yaml")):
        raw = path.read_bytes()
        declared = (yaml.safe_load(raw) or {}).get("version", "?")
        guardrails[path.stem] = f"{declared}+{hashlib.sha256(raw).hexdigest()[:8]}"
    prompts = {}
    for name in ("compose", "condense"):
        p = load_prompt(name)
        prompts[name] = {"version": p.version, "system": p.system, "user": p.user}
    return {"prompts": prompts, "guardrails": guardrails}


def run_configuration(
    settings: Settings,
    components: Components | None,
    datasets: list[dict[str, Any]],
    *,
    concurrency: int,
    repeats: int,
    judge: dict[str, Any] | None,
) -> dict[str, Any]:
    """Everything needed to compare or reproduce a run (no secrets: API keys are left out)."""
    from urllib.parse import urlparse

    defs = definition_versions()
    return {
        "code": code_version(),
        "models": {
            "llm": components.llm_identity if components else None,
            "llm_profile": settings.llm_profile if not settings.llm_base_url else None,
            "llm_server": urlparse(settings.llm_base_url).netloc if settings.llm_base_url else None,
            "llm_temperature": settings.llm_temperature,
            "embedding": settings.embedding_model,
            "judge": judge,
        },
        "prompts": {k: v["version"] for k, v in defs["prompts"].items()},
        "guardrails": defs["guardrails"],
        "corpus": components.corpus if components else None,
        "datasets": datasets,
        "retrieval": {
            k: getattr(settings, k)
            for k in (
                "retrieval_k",
                "retrieval_prefetch",
                "retrieval_fusion",
                "retrieval_max_per_page",
                "retrieval_weight_strength",
                "answer_min_dense_score",
                "answer_max_chunks",
            )
        },
        "concurrency": concurrency,
        "repeats": repeats,
    }


def resume_key(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of a configuration that must match for a run to be resumed (not the code
    version: a fix to the harness may resume; a different model, prompt, corpus or dataset may
    not)."""
    return {
        "models": {k: v for k, v in (config.get("models") or {}).items() if k != "judge"},
        "prompts": config.get("prompts"),
        "guardrails": config.get("guardrails"),
        "corpus": (config.get("corpus") or {}).get("fingerprint"),
        "datasets": sorted(d["sha256"] for d in config.get("datasets") or []),
        "retrieval": config.get("retrieval"),
    }
