"""LLM-based checks, added on top of the offline layers when a capable LLM server is configured."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from functools import cache
from typing import Any

import yaml
from langchain_core.messages import HumanMessage, SystemMessage

from chat_api.types import Verdict
from guardrails.definitions import DEFINITIONS_DIR

log = logging.getLogger(__name__)


@cache
def llm_check_prompts() -> tuple[dict[str, Any], str]:
    raw = (DEFINITIONS_DIR / "llm_checks.yaml").read_bytes()
    data = yaml.safe_load(raw)
    return data, f"{data['version']}+{hashlib.sha256(raw).hexdigest()[:8]}"


class LLMJailbreakCheck:
    """Ask the configured LLM whether a message is a manipulation attempt.

    Fails open (passes) when the LLM errors or replies with something unreadable: the offline
    layers have already run, and an LLM outage must not block every question."""

    def __init__(self, llm: Any, *, max_chars: int = 2000) -> None:
        self.llm = llm
        self.max_chars = max_chars

    def __call__(self, text: str) -> Verdict:
        prompts, version = llm_check_prompts()
        p = prompts["jailbreak"]
        messages = [
            SystemMessage(p["system"].strip()),
            HumanMessage(p["user"].strip().format(message=text[: self.max_chars])),
        ]
        try:
            reply = str(self.llm.invoke(messages, max_tokens=60).content)
            m = re.search(r"\{.*\}", reply, re.DOTALL)
            data = json.loads(m.group(0)) if m else {}
            attack = data.get("attack")
        except Exception as exc:  # noqa: BLE001 - fail open, say so
            log.warning("LLM jailbreak check failed: %s", exc)
            return Verdict(
                "jailbreak",
                True,
                f"llm check unavailable: {type(exc).__name__}",
                confidence=0.0,
                version=version,
            )
        if not isinstance(attack, bool):
            return Verdict(
                "jailbreak", True, "llm check gave no verdict", confidence=0.0, version=version
            )
        reason = str(data.get("reason", ""))[:200]
        return Verdict("jailbreak", not attack, reason, confidence=0.8, version=version)
