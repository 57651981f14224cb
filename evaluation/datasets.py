"""Evaluation datasets (DESIGN.md §6): load JSONL files, recognise each line's kind, hash files.

Four kinds of case, recognised per line from the fields present (so one file may mix them):

- ``conversation``: ``turns`` (a list of ``{"question"}``), with ``standalone_last_question``,
  ``reference_answer`` and ``expected_sources``;
- ``guardrail``: ``expected_route`` (one of `ROUTES`), optional ``family`` (e.g. a red-team
  probe family) and ``notes``;
- ``unanswerable``: ``expected_behaviour``;
- ``answer``: ``reference_answer``, ``key_facts`` and/or ``expected_sources``, with optional
  ``topic`` and ``kind`` (the kind of question: factual, process, eligibility, ...).

A bad line raises `DatasetError` naming the file and line number; nothing is half-loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evaluation.retrieval import normalise_path
from guardrails.router import REFUSALS

CaseKind = Literal["answer", "unanswerable", "guardrail", "conversation"]
KINDS: tuple[CaseKind, ...] = ("answer", "unanswerable", "guardrail", "conversation")

# The labels a guardrails dataset may use: the router's routes plus the two decided before it.
ROUTES = ("answer", "jailbreak", "pii", *REFUSALS)


class DatasetError(ValueError):
    """A dataset file that cannot be used: missing, unreadable, or with a malformed line."""


@dataclass(frozen=True)
class EvalCase:
    """One evaluation case. `question` is the (last) question asked; `turns` every question."""

    id: str
    dataset: str
    kind: CaseKind
    question: str
    turns: tuple[str, ...]
    reference_answer: str = ""
    key_facts: tuple[str, ...] = ()
    expected_sources: tuple[str, ...] = ()
    topic: str = ""
    question_kind: str = ""  # the row's own `kind` (factual, process, ...)
    expected_route: str = ""
    expected_behaviour: str = ""
    standalone_question: str = ""
    family: str = ""
    notes: str = ""

    @property
    def key(self) -> str:
        """Unique across datasets: `dataset/id`."""
        return f"{self.dataset}/{self.id}"


@dataclass
class Dataset:
    path: Path
    name: str
    sha256: str
    cases: list[EvalCase] = field(default_factory=list)

    @property
    def kinds(self) -> dict[str, int]:
        return dict(Counter(c.kind for c in self.cases))

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "sha256": self.sha256,
            "cases": len(self.cases),
            "kinds": self.kinds,
        }


def detect_kind(row: dict[str, Any]) -> CaseKind:
    """The kind of a dataset row, from the fields it has (see the module docstring)."""
    if "turns" in row:
        return "conversation"
    if "expected_route" in row:
        return "guardrail"
    if "expected_behaviour" in row:
        return "unanswerable"
    if any(k in row for k in ("reference_answer", "key_facts", "expected_sources")):
        return "answer"
    raise ValueError(
        "unknown kind of case: expected one of turns (conversation), expected_route "
        "(guardrail), expected_behaviour (unanswerable) or reference_answer/key_facts/"
        "expected_sources (answer)"
    )


def _text(row: dict[str, Any], name: str, required: bool = False) -> str:
    value = row.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{name} must be a non-empty string")
    return value.strip()


def _strings(row: dict[str, Any], name: str) -> tuple[str, ...]:
    value = row.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{name} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def case_from_row(row: Any, dataset: str) -> EvalCase:
    """Validate one parsed line and build its case; ValueError says what is wrong."""
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    kind = detect_kind(row)
    case_id = _text(row, "id", required=True)
    if kind == "conversation":
        turns = row["turns"]
        if not isinstance(turns, list) or not turns:
            raise ValueError('turns must be a non-empty list of {"question": ...}')
        questions = []
        for i, t in enumerate(turns, 1):
            q = t.get("question") if isinstance(t, dict) else None
            if not isinstance(q, str) or not q.strip():
                raise ValueError(f"turn {i} has no question")
            questions.append(q.strip())
    else:
        questions = [_text(row, "question", required=True)]
    route = _text(row, "expected_route")
    if kind == "guardrail" and route not in ROUTES:
        raise ValueError(f"expected_route {route!r} is not one of {', '.join(ROUTES)}")
    return EvalCase(
        id=case_id,
        dataset=dataset,
        kind=kind,
        question=questions[-1],
        turns=tuple(questions),
        reference_answer=_text(row, "reference_answer"),
        key_facts=_strings(row, "key_facts"),
        expected_sources=tuple(
            dict.fromkeys(normalise_path(p) for p in _strings(row, "expected_sources"))
        ),
        topic=_text(row, "topic"),
        question_kind=_text(row, "kind"),
        expected_route=route,
        expected_behaviour=_text(row, "expected_behaviour"),
        standalone_question=_text(row, "standalone_last_question"),
        family=_text(row, "family"),
        notes=_text(row, "notes"),
    )


def load_dataset(path: str | Path) -> Dataset:
    """One JSONL file: every non-blank line a case. The dataset's name is the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text") from exc
    ds = Dataset(path=path, name=path.stem, sha256=hashlib.sha256(raw).hexdigest())
    seen: set[str] = set()
    # JSONL lines end with "\n" only: str.splitlines() would also split at U+2028 and other
    # Unicode line breaks, which are valid inside JSON strings (red-team prompts carry them).
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: invalid JSON ({exc.msg})") from exc
        try:
            case = case_from_row(row, ds.name)
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from exc
        if case.id in seen:
            raise DatasetError(f"{where}: duplicate id {case.id!r}")
        seen.add(case.id)
        ds.cases.append(case)
    if not ds.cases:
        raise DatasetError(f"{path} has no cases")
    return ds


def load_datasets(paths: Iterable[str | Path]) -> list[Dataset]:
    """Several files; two files with the same stem would mix their case keys, so that fails."""
    datasets = [load_dataset(p) for p in paths]
    if not datasets:
        raise DatasetError("give at least one dataset file")
    names = Counter(d.name for d in datasets)
    clash = [n for n, c in names.items() if c > 1]
    if clash:
        raise DatasetError(f"two dataset files share the name {clash[0]!r}: rename one")
    return datasets
