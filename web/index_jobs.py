"""Re-indexing from the admin pages: a dry run first (the same Indexer as `govchat index
--dry-run`), then the real run, one at a time, in a background thread of the API process.

The API process holds the local Qdrant store open, so the job uses the API's own store and
embedding model (services.store, services.retriever.embedder) instead of opening a second client.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)


class JobBusy(RuntimeError):
    """An index job is already running."""


class JobRefused(RuntimeError):
    """The job cannot start (no plan to apply, no index store, ...)."""


@dataclass
class IndexJob:
    id: int
    dry_run: bool
    source: str
    status: str = "running"  # running | completed | failed
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str | None = None
    run_id: int | None = None
    plan_id: int | None = None  # for a real run: the dry run it applies
    pages_done: int = 0
    pages_total: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": "dry_run" if self.dry_run else "run",
            "source": self.source,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "run_id": self.run_id,
            "plan_id": self.plan_id,
            "pages_done": self.pages_done,
            "pages_total": self.pages_total,
            "summary": self.summary,
            "error": self.error,
        }


def make_indexer(services: Any, progress: Callable[[str], None]):
    """An Indexer on the API's open store, embedding with the API's own model."""
    from ingest.indexer import Indexer
    from ingest.tokens import load_token_counter
    from retrieval.embeddings import resolve_model_dir
    from retrieval.sparse import Bm25Encoder

    settings = services.settings
    embedder = getattr(services.retriever, "embedder", None)
    if services.store is None or embedder is None:
        raise JobRefused("this server has no index store to write to")
    return Indexer(
        services.store,
        embedder_factory=lambda: embedder,
        count_tokens=load_token_counter(resolve_model_dir(settings.embedding_model)),
        bm25=Bm25Encoder(avg_doc_len=settings.bm25_avg_doc_len),
        max_tokens=settings.chunk_max_tokens,
        min_tokens=settings.chunk_min_tokens,
        progress=progress,
    )


class IndexJobs:
    """At most one index job at a time; remembers the latest dry run and the latest run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.current: IndexJob | None = None
        self.last_plan: IndexJob | None = None
        self.last_run: IndexJob | None = None
        self._thread: threading.Thread | None = None

    def busy(self) -> bool:
        return self.current is not None and self.current.status == "running"

    def start(self, services: Any, *, dry_run: bool, plan_id: int | None = None) -> IndexJob:
        from ingest.sources import source_from_settings

        settings = services.settings
        with self._lock:
            if self.busy():
                raise JobBusy("an index job is already running: wait for it to finish")
            if not dry_run:
                plan = self.last_plan
                if plan is None or plan.status != "completed" or plan.id != plan_id:
                    raise JobRefused("check for changes first, then apply that dry run")
            try:
                source = source_from_settings(settings.source, settings)
            except ValueError as exc:
                raise JobRefused(str(exc)) from exc
            job = IndexJob(
                next(self._ids), dry_run, source.description, plan_id=None if dry_run else plan_id
            )
            self.current = job
            if dry_run:
                self.last_plan = job
            else:
                self.last_run = job
            self._thread = threading.Thread(
                target=self._work, args=(job, services, source), name=f"index-job-{job.id}"
            )
            self._thread.daemon = True
            self._thread.start()
            return job

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for the running job (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _work(self, job: IndexJob, services: Any, source: Any) -> None:
        from ingest.runs import RunLog

        runs = RunLog(services.sessions)
        errors: list[dict[str, Any]] = []
        summary: dict[str, Any] = {}
        status = "failed"
        try:
            job.run_id = runs.start(source.description, job.dry_run)

            def progress(_path: str) -> None:
                job.pages_done += 1

            indexer = make_indexer(services, progress)
            paths = source.list_paths()
            job.pages_total = len(paths)
            result = indexer.run(source, dry_run=job.dry_run, paths=paths)
            summary = result.as_dict()
            errors = list(result.errors)
            status = "completed"
        except Exception as exc:  # noqa: BLE001 - reported on the admin page and in the run log
            log.exception("index job %s failed", job.id)
            job.error = f"{type(exc).__name__}: {exc}"
            errors = [{"error": job.error}]
        finally:
            source.close()
            if job.run_id is not None:
                try:
                    runs.finish(
                        job.run_id,
                        status,
                        {k: v for k, v in summary.items() if k != "changes"},
                        errors,
                    )
                except Exception:  # noqa: BLE001
                    log.exception("could not record index run %s", job.run_id)
            job.summary = summary
            job.finished_at = datetime.now(UTC).isoformat()
            job.status = status
