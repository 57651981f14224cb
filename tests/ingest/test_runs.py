import subprocess
import sys

from govchat.db import init_db, make_engine
from ingest.runs import IndexRun, RunLog


def test_runs_are_recorded_and_a_killed_run_shows_as_interrupted(settings):
    sessions = init_db(make_engine(settings))
    log = RunLog(sessions)
    done = log.start("snapshot x", dry_run=False)
    log.finish(done, "completed", {"chunks_added": 3}, [])

    # A run whose process died without finishing (pid of a process that has exited).
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    with sessions.begin() as s:
        s.add(IndexRun(source="killed", status="running", pid=int(dead.stdout)))

    runs = log.recent()
    assert [(r["source"], r["status"]) for r in runs] == [
        ("killed", "interrupted"),
        ("snapshot x", "completed"),
    ]
    assert runs[1]["summary"] == {"chunks_added": 3} and runs[1]["finished_at"]

    # The next run start marks it for good.
    log.start("next", dry_run=True)
    with sessions() as s:
        assert s.query(IndexRun).filter_by(source="killed").one().status == "interrupted"
