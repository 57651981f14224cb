"""Input guardrails that always run offline: length, personal data, injection, social routes."""

from __future__ import annotations

from dataclasses import dataclass

from chat_api.types import Verdict
from guardrails.definitions import InputRules, first_match_verdict, input_rules


@dataclass
class Redaction:
    text: str
    kinds: list[str]  # kinds of personal data removed, in order of first appearance
    verdict: Verdict


def check_length(text: str, rules: InputRules | None = None) -> Verdict:
    rules = rules or input_rules()
    ok = 0 < len(text.strip()) <= rules.max_question_chars
    reason = (
        ""
        if ok
        else (
            "empty question"
            if not text.strip()
            else f"{len(text)} characters (limit {rules.max_question_chars})"
        )
    )
    return Verdict("length", ok, reason, version=rules.version)


def redact_personal_data(text: str, rules: InputRules | None = None) -> Redaction:
    rules = rules or input_rules()
    kinds: list[str] = []
    for rule in rules.personal_data:
        text, n = rule.pattern.subn(rule.placeholder, text)
        if n and rule.kind not in kinds:
            kinds.append(rule.kind)
    verdict = Verdict(
        "personal_data",
        passed=True,  # redaction fixes the input; the question can still be answered
        reason=("redacted: " + ", ".join(kinds)) if kinds else "",
        version=rules.version,
        details={"kinds": kinds} if kinds else {},
    )
    return Redaction(text, kinds, verdict)


def check_injection(text: str, rules: InputRules | None = None) -> Verdict:
    rules = rules or input_rules()
    return first_match_verdict("jailbreak", rules.injection, text, rules.version, "matched rule")


def social_route(text: str, rules: InputRules | None = None) -> str | None:
    """'greeting' or 'acknowledgement' for short social messages, else None."""
    rules = rules or input_rules()
    stripped = text.strip()
    if any(p.match(stripped) for p in rules.greeting):
        return "greeting"
    if any(p.match(stripped) for p in rules.acknowledgement):
        return "acknowledgement"
    return None
