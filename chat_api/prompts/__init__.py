"""Versioned prompt files (YAML beside this module)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

PROMPTS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str  # declared version + content hash
    system: str
    user: str


@cache
def load_prompt(name: str) -> Prompt:
    raw = (PROMPTS_DIR / f"{name}.yaml").read_bytes()
    data = yaml.safe_load(raw)
    return Prompt(
        name=name,
        version=f"{data['version']}+{hashlib.sha256(raw).hexdigest()[:8]}",
        system=data["system"].strip(),
        user=data["user"].strip(),
    )
