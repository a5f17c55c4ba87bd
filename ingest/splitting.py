"""Split loaded documents into chunks with LangChain's text splitters.

Plain text goes through `RecursiveCharacterTextSplitter` (paragraphs, then lines,
then words). Markdown (files and Notion pages) first goes through
`MarkdownHeaderTextSplitter`, so a chunk never spans two sections and carries its
heading path in `metadata["headings"]` ("Setup > Install"), then through the
recursive splitter for sections longer than `chunk_size`.

Every chunk gets `metadata["chunk_index"]`, counted per source (`source_type`,
`source_id`) across all its documents, so the pages of one PDF number on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from langchain_core.documents import Document
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

__all__ = ["HEADING_SEPARATOR", "split_documents"]

HEADING_SEPARATOR = " > "
_HEADER_LEVELS = [("#" * n, f"h{n}") for n in range(1, 7)]


def split_documents(
    documents: Sequence[Document],
    *,
    chunk_size: int,
    chunk_overlap: int,
    markdown: bool = False,
) -> list[Document]:
    """Chunks of `documents`, metadata kept, `chunk_index` (and `headings`) added."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if not 0 <= chunk_overlap < chunk_size:
        raise ValueError(f"chunk_overlap must be in [0, chunk_size), got {chunk_overlap}")
    recursive = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=False
    )
    sections = _markdown_sections(documents) if markdown else list(documents)
    counters: Counter[tuple[str, str]] = Counter()
    chunks: list[Document] = []
    for chunk in recursive.split_documents(sections):
        if not chunk.page_content.strip():
            continue
        key = (str(chunk.metadata.get("source_type", "")), str(chunk.metadata.get("source_id", "")))
        chunk.metadata["chunk_index"] = counters[key]
        counters[key] += 1
        chunks.append(chunk)
    return chunks


def _markdown_sections(documents: Sequence[Document]) -> list[Document]:
    # strip_headers=False keeps the heading line in the text, which helps both the
    # embedding and keyword search; the path also goes to metadata for citations.
    splitter = MarkdownHeaderTextSplitter(headers_to_split_on=_HEADER_LEVELS, strip_headers=False)
    sections: list[Document] = []
    for document in documents:
        for section in splitter.split_text(document.page_content):
            found = section.metadata
            path = [found[name] for _, name in _HEADER_LEVELS if found.get(name)]
            metadata = dict(document.metadata)
            if path:
                metadata["headings"] = HEADING_SEPARATOR.join(path)
            # The header splitter strips every line and joins blocks with "  \n"; turn
            # those back into paragraph breaks so the recursive splitter can use them.
            text = section.page_content.replace("  \n", "\n\n")
            sections.append(Document(page_content=text, metadata=metadata))
    return sections
