"""The ingestion options the settings ask for, built in one place for the CLI and the chat."""

from __future__ import annotations

from chat_app.settings import Settings
from ingest.files import IngestOptions
from ingest.loaders import LoadOptions
from ingest.loaders.options import ArchiveLimits, OcrOptions

__all__ = ["ingest_options"]


def ingest_options(settings: Settings) -> IngestOptions:
    return IngestOptions(
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        max_bytes=settings.max_file_bytes,
        batch_size=settings.embedding_batch_size,
        load=LoadOptions(
            ocr=OcrOptions(
                enabled=settings.ocr_enabled,
                languages=settings.ocr_languages,
                dpi=settings.ocr_dpi,
                jobs=settings.ocr_jobs,
            ),
            archive=ArchiveLimits(
                max_expanded_bytes=int(settings.archive_max_expanded_mb * 2**20),
                max_ratio=settings.archive_max_ratio,
                max_members=settings.archive_max_members,
            ),
        ),
    )
