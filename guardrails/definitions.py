"""Load the versioned guardrail definition files (YAML beside this module)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from chat_api.types import Verdict

DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"


@dataclass(frozen=True)
class PersonalDataRule:
    kind: str
    placeholder: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class InputRules:
    version: str
    max_question_chars: int
    personal_data: tuple[PersonalDataRule, ...]
    injection: tuple[re.Pattern[str], ...]
    greeting: tuple[re.Pattern[str], ...]
    acknowledgement: tuple[re.Pattern[str], ...]


def _read(name: str) -> tuple[dict[str, Any], str]:
    raw = (DEFINITIONS_DIR / name).read_bytes()
    data = yaml.safe_load(raw)
    # The recorded version names the file's declared version and its content, so an edit that
    # forgot to bump the version still shows up.
    return data, f"{data['version']}+{hashlib.sha256(raw).hexdigest()[:8]}"


def first_match_verdict(
    name: str, patterns: tuple[re.Pattern[str], ...], text: str, version: str, what: str
) -> Verdict:
    """Fail with the first pattern that matches (naming what matched), else pass."""
    for pattern in patterns:
        m = pattern.search(text)
        if m:
            return Verdict(name, False, f"{what}: {m.group(0)!r}", version=version)
    return Verdict(name, True, version=version)


def _compile(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


@cache
def input_rules() -> InputRules:
    data, version = _read("input_rules.yaml")
    return InputRules(
        version=version,
        max_question_chars=int(data["max_question_chars"]),
        personal_data=tuple(
            PersonalDataRule(r["kind"], r["placeholder"], re.compile(r["pattern"], re.IGNORECASE))
            for r in data["personal_data"]
        ),
        injection=_compile(data["injection_patterns"]),
        greeting=_compile(data["greeting_patterns"]),
        acknowledgement=_compile(data["acknowledgement_patterns"]),
    )


@cache
def messages() -> tuple[dict[str, str], str]:
    data, version = _read("messages.yaml")
    return {k: " ".join(v.split()) for k, v in data["messages"].items()}, version


@dataclass(frozen=True)
class OutputRules:
    version: str
    advice_opinion: tuple[re.Pattern[str], ...]
    forbidden_terms: tuple[str, ...]


@cache
def output_rules() -> OutputRules:
    data, version = _read("output_rules.yaml")
    return OutputRules(
        version=version,
        advice_opinion=_compile(data["advice_opinion_patterns"]),
        forbidden_terms=tuple(t.lower() for t in data["forbidden_terms"]),
    )
