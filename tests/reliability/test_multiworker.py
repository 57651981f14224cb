"""Several API worker processes (separate uvicorn processes, as replicas behind a load balancer)
serving one database: conversation consistency, shared rate limits and feedback, on SQLite and
on PostgreSQL. The LLM is a real HTTP server (a fake OpenAI-compatible one) shared by all
workers; the index is a stand-in, because a local Qdrant folder is one-process-only and no Qdrant
server can run here (see docs/scaling.md)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from chat_api.models import AnswerRecord, FeedbackRecord, QuestionRecord
from govchat.cli import app as cli
from tests.reliability.apps import GOOD
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.postgres import fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
API = "/api/v1"
USER_LIMIT = 10


def _free_port() -> int:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


@contextmanager
def workers(n: int, env: dict[str, str]):
    procs, urls = [], []
    try:
        for _ in range(n):
            port = _free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", "tests.reliability.worker_app:create",
                     "--factory", "--host", "127.0.0.1", "--port", str(port),
                     "--log-level", "warning"],
                    cwd=ROOT,
                    env={**os.environ, **env},
                )
            )  # fmt: skip
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 120
        for url, proc in zip(urls, procs, strict=True):
            while True:
                assert proc.poll() is None, f"worker {url} exited with {proc.returncode}"
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "workers did not start"
                time.sleep(0.3)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def database(backend: str, tmp_path: Path):
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_several_workers_share_one_database_correctly(tmp_path, backend):
    with ExitStack() as stack:
        db_url = stack.enter_context(database(backend, tmp_path))
        llm = stack.enter_context(FakeOpenAIServer(default=Reply(content=GOOD, delay=0.05)))
        env = {
            "GOVCHAT_DATA_DIR": str(tmp_path / "data"),
            "GOVCHAT_DATABASE_URL": db_url,
            "GOVCHAT_LLM_BASE_URL": llm.base_url,
            "GOVCHAT_RATE_LIMIT_CLIENT_PER_MINUTE": "0",
            "GOVCHAT_RATE_LIMIT_USER_PER_MINUTE": str(USER_LIMIT),
        }
        urls = stack.enter_context(workers(WORKERS, env))
        http = stack.enter_context(httpx.Client(timeout=60))
        pool = stack.enter_context(ThreadPoolExecutor(12))
        rr = itertools.cycle(urls)

        # 1. Conversations whose follow-ups arrive concurrently at different workers.
        convs, follow_ups = 6, 5
        starts = list(
            pool.map(
                lambda i: http.post(
                    f"{urls[i % WORKERS]}{API}/conversations", json={"question": f"Q{i} SSP?"}
                ).json(),
                range(convs),
            )
        )
        jobs = [(s["conversation_id"], j, next(rr)) for j in range(follow_ups) for s in starts]
        codes = list(
            pool.map(
                lambda job: (
                    http.post(
                        f"{job[2]}{API}/conversations/{job[0]}/questions",
                        json={"question": f"follow-up {job[1]}"},
                    ).status_code
                ),
                jobs,
            )
        )
        assert codes == [201] * len(jobs)
        for s in starts:
            views = [
                http.get(f"{u}{API}/conversations/{s['conversation_id']}").json() for u in urls
            ]
            assert views[0] == views[1] == views[2]  # every worker sees the same conversation
            turns = views[0]["turns"]
            assert len(turns) == 1 + follow_ups
            assert sorted(t["question"] for t in turns[1:]) == [
                f"follow-up {j}" for j in range(follow_ups)
            ]
            assert all(t["answer"]["status"] == "answered" for t in turns)

        # 2. One end user flooding every worker at once: the limit holds across processes.
        if time.time() % 60 > 45:  # keep the burst inside one rate-limit window
            time.sleep(61 - time.time() % 60)
        burst = list(
            pool.map(
                lambda u: http.post(
                    f"{u}{API}/conversations",
                    json={"question": "How much is SSP?"},
                    headers={"X-End-User-Id": "flooder"},
                ),
                [next(rr) for _ in range(24)],
            )
        )
        assert sorted(r.status_code for r in burst).count(201) == USER_LIMIT
        assert [r.status_code for r in burst].count(429) == 24 - USER_LIMIT
        assert all(r.headers["X-RateLimit-Limit"] == str(USER_LIMIT) for r in burst)

        # 3. Feedback sent to one worker is read back from the others.
        answer_ids = [s["answer"]["id"] for s in starts]
        fb = list(
            pool.map(
                lambda a: (
                    http.post(
                        f"{urls[a[0] % WORKERS]}{API}/answers/{a[1]}/feedback",
                        json={"useful": a[0] % 2 == 0, "comment": f"c{a[0]}"},
                    ).status_code
                ),
                enumerate(answer_ids),
            )
        )
        assert fb == [201] * convs
        # Nothing lost or duplicated: exactly the rows the requests produced.
        engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as c:
            questions = c.scalar(select(func.count()).select_from(QuestionRecord))
            answers = c.scalar(select(func.count()).select_from(AnswerRecord))
            feedback = c.scalar(select(func.count()).select_from(FeedbackRecord))
            useful = dict(c.execute(select(FeedbackRecord.answer_id, FeedbackRecord.useful)).all())
        engine.dispose()
        assert useful == {a: i % 2 == 0 for i, a in enumerate(answer_ids)}
        assert questions == answers == convs * (1 + follow_ups) + USER_LIMIT
        assert feedback == convs


def test_serve_refuses_several_workers_over_a_local_index(tmp_path, monkeypatch):
    monkeypatch.setenv("GOVCHAT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("GOVCHAT_QDRANT_URL", raising=False)
    from govchat.settings import get_settings

    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(cli, ["serve", "--workers", "3"])
    finally:
        get_settings.cache_clear()
    assert r.exit_code != 0
    assert "needs a Qdrant server" in r.output and "GOVCHAT_QDRANT_URL" in r.output
