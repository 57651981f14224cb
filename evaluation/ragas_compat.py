"""Import ragas 0.4 safely: offline, with no usage tracking, and around a known import bug.

ragas 0.4.3 (the latest release) imports `langchain_community.chat_models.vertexai`, which no
current `langchain-community` has (upstream issues vibrantlabsai/ragas#2745, #2995): `import
ragas` fails before any metric can run. ragas only uses that class in an `isinstance` list, so
when the module is missing a stand-in class is registered under that name. Nothing here runs at
import time: call `prepare_ragas()` before importing anything from ragas.
"""

from __future__ import annotations

import importlib
import os
import sys
import types

_SHIM = "langchain_community.chat_models.vertexai"


def prepare_ragas() -> None:
    """Switch ragas's telemetry off, keep Hugging Face offline, and patch the missing module."""
    os.environ["RAGAS_DO_NOT_TRACK"] = "true"  # an offline service sends no usage events
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if _SHIM in sys.modules:
        return
    try:
        importlib.import_module(_SHIM)
    except ImportError:
        shim = types.ModuleType(_SHIM)
        shim.ChatVertexAI = type("ChatVertexAI", (), {"__doc__": "stand-in (see ragas_compat)"})
        sys.modules[_SHIM] = shim
