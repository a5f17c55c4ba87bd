"""The one place that reads the environment (and `.env`).

Everything below `chat_app` receives explicit values built from a `Settings`
object; nothing else calls `os.environ`.
"""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from retrieval.passages import SearchMode

# The same values as retrieval.embeddings.BACKENDS (a test keeps them equal).
EmbeddingBackend = Literal["torch", "onnx", "onnx-int8"]


class Settings(BaseSettings):
    """Every setting of the application, with its environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="KB_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # Database
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "KB_DATABASE_URL"),
        description="External PostgreSQL URL; unset = embedded server in data_dir.",
    )
    data_dir: Path = Field(default=Path(".kb"), description="Embedded database, secrets, files.")
    db_pool_size: int = 20
    db_max_overflow: int = 30
    db_pool_pre_ping: bool = True
    db_pool_recycle: int = 300
    database_replica_urls: str = Field(
        default="",
        description="Streaming read replicas (comma-separated URLs) for searches and chat "
        "history; empty = every read on the primary.",
    )
    replica_max_lag_seconds: float = Field(
        default=10.0, gt=0, description="A replica further behind the primary is skipped."
    )
    replica_check_seconds: float = Field(
        default=1.0, gt=0, description="How often each process checks its replicas' lag."
    )
    replica_wait_seconds: float = Field(
        default=0.5,
        ge=0,
        description="How long a read after the person's own write waits for a replica to "
        "replay it before it goes to the primary.",
    )

    # Embeddings
    embedding_model: str | None = Field(
        default=None,
        description="sentence-transformers name or path; unset = bundled all-MiniLM-L6-v2.",
    )
    embedding_batch_size: int = 64
    embedding_backend: EmbeddingBackend = Field(
        default="onnx-int8",
        description="torch, onnx or onnx-int8 (the model exported once into models_dir).",
    )
    models_dir: Path | None = Field(
        default=None, description="Where ONNX exports are cached; unset = data_dir/models."
    )

    # Ingestion
    chunk_size: int = 1000
    chunk_overlap: int = 150
    max_file_mb: float = 50.0
    max_files_per_upload: int = 10
    ocr_enabled: bool = Field(
        default=True, description="OCR scanned PDF pages and images with tesseract."
    )
    ocr_languages: str = Field(
        default="eng", description='Tesseract languages, e.g. "eng" or "eng+deu".'
    )
    ocr_dpi: int = Field(default=300, ge=72, le=600, description="PDF render resolution for OCR.")
    ocr_jobs: int = Field(default=2, ge=1, description="Pages of one file OCR'd at once.")
    archive_max_expanded_mb: float = Field(
        default=512.0, gt=0, description="DOCX/XLSX/PPTX/EPUB: largest expanded size."
    )
    archive_max_ratio: float = Field(
        default=100.0, gt=1, description="DOCX/XLSX/PPTX/EPUB: largest compression ratio."
    )
    archive_max_members: int = Field(
        default=10_000, ge=1, description="DOCX/XLSX/PPTX/EPUB: most files inside."
    )

    # Retrieval
    retrieval_mode: SearchMode = "hybrid"
    top_k: int = 5
    score_threshold: float = Field(
        default=0.25,
        description="Minimum cosine similarity of the best passage; below it: 'I don't know'.",
    )

    # Language model
    llm: str | None = Field(
        default=None,
        description='"provider:model", e.g. "openai:gpt-4o-mini", "ollama:llama3.1"; '
        "unset = extractive answers.",
    )
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_temperature: float = 0.1

    # Notion
    notion_base_url: str | None = Field(default=None, description="Override (tests, proxies).")
    notion_token: SecretStr | None = Field(
        default=None, description="Optional server-wide integration token."
    )
    notion_requests_per_second: float = 3.0
    notion_max_retries: int = 5
    notion_sync_interval_minutes: float = Field(
        default=60.0,
        ge=0,
        description="Re-sync every Notion connection this often (minutes); 0 or off = never.",
    )

    # Background jobs (procrastinate, in the same PostgreSQL)
    workers: int = Field(
        default=1, ge=0, description="Worker processes `kb serve` starts; 0 = web only."
    )
    worker_concurrency: int = Field(default=1, ge=1, description="Jobs one worker runs at once.")
    worker_nice: int = Field(
        default=10, ge=0, le=19, description="CPU niceness of worker processes (chat first)."
    )
    worker_torch_threads: int = Field(
        default=0, ge=0, description="Torch threads in a worker; 0 = torch's default."
    )
    worker_heartbeat_seconds: float = Field(default=10.0, gt=0)
    worker_stalled_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A worker silent this long is dead: its jobs are retried elsewhere.",
    )
    job_max_attempts: int = Field(default=5, ge=1, description="Tries for transient errors.")
    job_retry_seconds: float = Field(
        default=10.0, ge=0, description="Wait before the first retry (doubles each time)."
    )
    job_retention_days: float = Field(
        default=30.0, gt=0, description="Finished jobs (and failed uploads) kept this long."
    )

    # Secrets
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key for encrypting Notion tokens at rest; unset = generated in data_dir.",
    )
    chainlit_auth_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CHAINLIT_AUTH_SECRET", "KB_CHAINLIT_AUTH_SECRET"),
    )
    admin_password: SecretStr | None = None
    admin_user: str = "admin"

    # Web server
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KB_PUBLIC_URL", "CHAINLIT_URL"),
        description="The URL people open (behind a proxy); https turns on Secure cookies.",
    )
    security_headers: bool = True

    # Operations
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that opens /metrics (Prometheus); unset = no /metrics.",
    )

    # Sessions and logins
    session_hours: float = Field(default=12.0, gt=0, description="How long a login lasts.")
    login_max_failures: int = Field(default=20, ge=1, description="Per login name and window.")
    login_max_failures_per_address: int = Field(default=100, ge=1)
    login_failure_window_minutes: float = Field(default=15.0, gt=0)
    login_throttle_storage: str = Field(
        default="postgresql",
        description="`postgresql` (the app's database) or a `limits` storage URI.",
    )

    @field_validator("models_dir", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        # `KB_MODELS_DIR=` (as in .env.example) would otherwise be Path("") = the cwd.
        return None if value == "" else value

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        # `KB_METRICS_TOKEN=` must keep /metrics closed, not open it to "Bearer ".
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def replica_urls(self) -> list[str]:
        """The configured read replicas, in order."""
        return [url.strip() for url in self.database_replica_urls.split(",") if url.strip()]

    @field_validator("notion_sync_interval_minutes", mode="before")
    @classmethod
    def _off_is_zero(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"off", "never", "false", "no"}:
            return 0.0
        return value

    @property
    def notion_sync_interval_seconds(self) -> float | None:
        """The schedule of Notion re-syncs in seconds, or None when it is off."""
        minutes = self.notion_sync_interval_minutes
        return minutes * 60 if minutes > 0 else None

    @cached_property
    def resolved_data_dir(self) -> Path:
        path = self.data_dir.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def resolved_models_dir(self) -> Path:
        """The ONNX export cache (created on first export, not here)."""
        if self.models_dir is not None:
            return self.models_dir.expanduser().resolve()
        return self.resolved_data_dir / "models"

    @property
    def pgdata_dir(self) -> Path:
        return self.resolved_data_dir / "pgdata"

    @property
    def public_origin(self) -> str | None:
        """scheme://host[:port] of `public_url`, lower-case."""
        if not self.public_url:
            return None
        parts = urlsplit(self.public_url.strip())
        return f"{parts.scheme}://{parts.netloc}".lower() if parts.netloc else None

    @property
    def https(self) -> bool:
        return (self.public_origin or "").startswith("https://")

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    def persistent_secret(self, name: str, configured: SecretStr | None) -> str:
        """A configured secret, or one generated once and kept in data_dir (mode 0600)."""
        if configured is not None:
            return configured.get_secret_value()
        path = self.resolved_data_dir / f"{name}.secret"
        if path.exists():
            return path.read_text().strip()
        value = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(value)
        return value


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and `.env`, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
