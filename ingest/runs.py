"""A record of every index run: when, from where, what it did, what went wrong."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from govchat.db import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


class IndexRun(Base):
    __tablename__ = "index_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # running | completed | failed | interrupted
    status: Mapped[str] = mapped_column(String(20), default="running")
    source: Mapped[str] = mapped_column(String(2000))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "status": self.status,
            "source": self.source,
            "dry_run": self.dry_run,
            "summary": self.summary or {},
            "errors": self.errors or [],
        }


class RunLog:
    """Start, finish and list index runs."""

    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def start(self, source: str, dry_run: bool) -> int:
        with self.sessions.begin() as s:
            # A run still marked "running" whose process is gone was killed: say so.
            for run in s.scalars(select(IndexRun).where(IndexRun.status == "running")):
                if not _alive(run.pid):
                    run.status = "interrupted"
            run = IndexRun(source=source, dry_run=dry_run, pid=os.getpid(), status="running")
            s.add(run)
            s.flush()
            return run.id

    def finish(
        self, run_id: int, status: str, summary: dict[str, Any], errors: list[dict[str, Any]]
    ) -> None:
        with self.sessions.begin() as s:
            run = s.get(IndexRun, run_id)
            if run is None:
                return
            run.status = status
            run.finished_at = utcnow()
            run.summary = summary
            run.errors = errors

    def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        with self.sessions() as s:
            rows = s.scalars(select(IndexRun).order_by(IndexRun.id.desc()).limit(limit))
            out = []
            for run in rows:
                d = run.as_dict()
                if run.status == "running" and not _alive(run.pid):
                    d["status"] = "interrupted"
                out.append(d)
            return out


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
