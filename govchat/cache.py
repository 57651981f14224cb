"""The one cache folder for things derived at run time (trained classifiers, example
embeddings, unpacked models): `GOVCHAT_CACHE_DIR`, else `XDG_CACHE_HOME`, else ~/.cache;
each user gets its own subfolder of `<root>/govchat/`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(name: str) -> Path:
    base = os.environ.get("GOVCHAT_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "govchat" / name
