"""API load and soak on loopback: many concurrent conversations with follow-ups against real
uvicorn worker processes and a real database, with a fast fake LLM (a real OpenAI-compatible
HTTP server answering at once) and a stand-in index, so the server, the pipeline's rules and the
storage are what is measured.

    .venv/bin/python -m bench.bench_load [--conversations 50] [--follow-ups 3] [--workers 1]
        [--database sqlite|postgres] [--soak-seconds 120] [--append]

Checks afterwards that every 201 is exactly one stored question and answer (no lost or
duplicated writes), and samples the workers' RSS during the soak (memory stable?).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
from sqlalchemy import create_engine, func, select

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def start_workers(n: int, env: dict[str, str]) -> tuple[list[subprocess.Popen], list[str]]:
    procs, urls = [], []
    for _ in range(n):
        port = _free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "tests.reliability.worker_app:create",
                 "--factory", "--host", "127.0.0.1", "--port", str(port), "--log-level", "error"],
                cwd=ROOT, env={**os.environ, **env},
            )
        )  # fmt: skip
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    return procs, urls


def conversation(http: httpx.Client, url: str, n_follow: int, lat: list, codes: list) -> None:
    def timed(path: str, question: str) -> httpx.Response:
        t0 = time.perf_counter()
        r = http.post(f"{url}{path}", json={"question": question})
        lat.append(time.perf_counter() - t0)
        codes.append(r.status_code)
        return r

    first = timed("/api/v1/conversations", "How much is Statutory Sick Pay?")
    if first.status_code != 201:
        return
    cid = first.json()["conversation_id"]
    for i in range(n_follow):
        timed(f"/api/v1/conversations/{cid}/questions", f"And for agency workers, case {i}?")


def wave(urls: list[str], conversations: int, follow_ups: int) -> dict:
    lat: list[float] = []
    codes: list[int] = []
    limits = httpx.Limits(max_connections=conversations, max_keepalive_connections=conversations)
    with httpx.Client(timeout=60, limits=limits) as http, ThreadPoolExecutor(conversations) as pool:
        t0 = time.perf_counter()
        list(
            pool.map(
                lambda i: conversation(http, urls[i % len(urls)], follow_ups, lat, codes),
                range(conversations),
            )
        )
        seconds = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100)
    return {
        "requests": len(lat),
        "ok": codes.count(201),
        "errors": len(codes) - codes.count(201),
        "seconds": seconds,
        "rps": len(lat) / seconds,
        "p50_ms": q[49] * 1000,
        "p95_ms": q[94] * 1000,
        "max_ms": max(lat) * 1000,
    }


def rss_mb(procs: list[subprocess.Popen]) -> float:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += psutil.Process(p.pid).memory_info().rss
    return total / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conversations", type=int, default=50)
    ap.add_argument("--follow-ups", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--soak-seconds", type=float, default=120)
    ap.add_argument("--append", action="store_true")
    args = ap.parse_args()

    from tests.reliability.apps import GOOD
    from tests.support.openai_server import FakeOpenAIServer, Reply

    tmp = Path(tempfile.mkdtemp(prefix="govchat-load-"))
    if args.database == "postgres":
        url = os.environ.get("GOVCHAT_TEST_POSTGRES_URL")
        if not url:
            raise SystemExit('run: eval "$(bash scripts/postgres_setup.sh)"')
        from tests.support.postgres import fresh_postgres_database

        db_ctx = fresh_postgres_database()
        db_url = db_ctx.__enter__()
    else:
        db_url = f"sqlite:///{tmp / 'load.sqlite3'}"
    with FakeOpenAIServer(default=Reply(content=GOOD)) as llm:
        env = {
            "GOVCHAT_DATA_DIR": str(tmp / "data"),
            "GOVCHAT_DATABASE_URL": db_url,
            "GOVCHAT_LLM_BASE_URL": llm.base_url,
            "GOVCHAT_RATE_LIMIT_CLIENT_PER_MINUTE": "0",
            "GOVCHAT_RATE_LIMIT_USER_PER_MINUTE": "0",
        }
        procs, urls = start_workers(args.workers, env)
        try:
            wave(urls, 5, 1)  # warm-up (counted in the database check, not in the figures)
            expected = 10
            load = wave(urls, args.conversations, args.follow_ups)
            expected += load["ok"]
            rss = [(0.0, rss_mb(procs))]
            soak = []
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < args.soak_seconds:
                w = wave(urls, args.conversations, args.follow_ups)
                soak.append(w)
                expected += w["ok"]
                rss.append((time.perf_counter() - t0, rss_mb(procs)))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    from chat_api.models import AnswerRecord, QuestionRecord

    with engine.connect() as c:
        questions = c.scalar(select(func.count()).select_from(QuestionRecord))
        answers = c.scalar(select(func.count()).select_from(AnswerRecord))
    engine.dispose()
    if args.database == "postgres":
        db_ctx.__exit__(None, None, None)

    soak_requests = sum(w["requests"] for w in soak)
    soak_errors = sum(w["errors"] for w in soak)
    soak_p95 = statistics.median(w["p95_ms"] for w in soak) if soak else 0
    soak_rps = statistics.median(w["rps"] for w in soak) if soak else 0
    half = len(rss) // 2
    lines = [
        "",
        f"### Load: {args.conversations} concurrent conversations x {1 + args.follow_ups} turns, "
        f"{args.workers} worker(s), {args.database}",
        "",
        f"`.venv/bin/python -m bench.bench_load --conversations {args.conversations} "
        f"--follow-ups {args.follow_ups} --workers {args.workers} --database {args.database} "
        f"--soak-seconds {args.soak_seconds:.0f}` ({time.strftime('%Y-%m-%d')}; 2 shared cores; "
        "load generator, fake LLM server and workers on the same machine; full pipeline with the "
        "simple input rules, a stand-in index, an instant fake LLM over HTTP; rate limits off).",
        "",
        "| phase | requests | 201 | errors | seconds | req/s | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| load | {load['requests']} | {load['ok']} | {load['errors']} | {load['seconds']:.1f} | "
        f"{load['rps']:.0f} | {load['p50_ms']:.0f} | {load['p95_ms']:.0f} | {load['max_ms']:.0f} |",
        f"| soak ({len(soak)} waves) | {soak_requests} | {soak_requests - soak_errors} | "
        f"{soak_errors} | {sum(w['seconds'] for w in soak):.0f} | {soak_rps:.0f} (median) | - | "
        f"{soak_p95:.0f} (median) | {max((w['max_ms'] for w in soak), default=0):.0f} |",
        "",
        f"Database afterwards: {questions} questions and {answers} answers for {expected} "
        f"responses 201 ({'no lost or duplicated writes' if questions == answers == expected else 'MISMATCH'}). "  # noqa: E501
        f"Workers' RSS: {rss[0][1]:.0f} MB after the load wave, {rss[half][1]:.0f} MB at mid-soak, "
        f"{rss[-1][1]:.0f} MB at the end (max {max(r for _, r in rss):.0f} MB).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        with RESULTS.open("a") as f:
            f.write(text)
    if not questions == answers == expected:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
