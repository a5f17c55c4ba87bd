"""Splitting loaded documents into chunks (no database)."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document

from ingest.splitting import split_documents

GUIDE = """Intro before any heading.

# Setup

Read this first.

## Install

Run the installer.

```bash
# a comment, not a heading
pip install kb
```

## Configure

Edit the settings file.

# Usage

Ask questions.
"""


def _doc(text: str, source_id: str = "guide.md", **metadata: object) -> Document:
    return Document(
        page_content=text,
        metadata={"source_type": "file", "source_id": source_id, "title": "Guide", **metadata},
    )


def test_markdown_chunks_carry_their_heading_path() -> None:
    chunks = split_documents([_doc(GUIDE)], chunk_size=1000, chunk_overlap=100, markdown=True)
    by_heading = {c.metadata.get("headings"): c.page_content for c in chunks}
    assert set(by_heading) == {None, "Setup", "Setup > Install", "Setup > Configure", "Usage"}
    assert by_heading["Setup > Install"].startswith("## Install")
    assert "# a comment, not a heading" in by_heading["Setup > Install"]
    assert by_heading[None] == "Intro before any heading."
    assert all("h1" not in c.metadata for c in chunks)


def test_markdown_sections_keep_paragraph_breaks() -> None:
    chunks = split_documents([_doc(GUIDE)], chunk_size=1000, chunk_overlap=100, markdown=True)
    install = next(c for c in chunks if c.metadata.get("headings") == "Setup > Install")
    assert "Run the installer.\n\n```bash" in install.page_content


def test_long_section_is_split_again_and_keeps_its_headings() -> None:
    body = "\n\n".join(f"Sentence number {i} says something about llamas." for i in range(40))
    chunks = split_documents(
        [_doc(f"# Llamas\n\n{body}")], chunk_size=200, chunk_overlap=40, markdown=True
    )
    assert len(chunks) > 5
    assert all(len(c.page_content) <= 200 for c in chunks)
    assert {c.metadata["headings"] for c in chunks} == {"Llamas"}


def test_plain_text_split_respects_size_and_overlap() -> None:
    words = " ".join(f"word{i}" for i in range(400))
    chunks = split_documents([_doc(words, "plain.txt")], chunk_size=300, chunk_overlap=60)
    assert all(len(c.page_content) <= 300 for c in chunks)
    first_tail = chunks[0].page_content.split()[-1]
    assert first_tail in chunks[1].page_content.split()
    assert "headings" not in chunks[0].metadata


def test_chunk_index_counts_per_source_across_pages() -> None:
    pages = [_doc("a " * 300, "report.pdf", page=p) for p in (1, 2)] + [_doc("short", "other.txt")]
    chunks = split_documents(pages, chunk_size=200, chunk_overlap=0)
    report = [c for c in chunks if c.metadata["source_id"] == "report.pdf"]
    assert [c.metadata["chunk_index"] for c in report] == list(range(len(report)))
    assert {c.metadata["page"] for c in report} == {1, 2}
    other = [c for c in chunks if c.metadata["source_id"] == "other.txt"]
    assert [c.metadata["chunk_index"] for c in other] == [0]


def test_metadata_is_kept_and_not_shared_between_chunks() -> None:
    chunks = split_documents([_doc("x " * 500, file_hash="abc")], chunk_size=100, chunk_overlap=0)
    assert all(c.metadata["file_hash"] == "abc" and c.metadata["title"] == "Guide" for c in chunks)
    chunks[0].metadata["title"] = "changed"
    assert chunks[1].metadata["title"] == "Guide"


def test_whitespace_only_documents_give_no_chunks() -> None:
    assert split_documents([_doc("  \n\n \t ")], chunk_size=100, chunk_overlap=0) == []


def test_overlap_must_be_smaller_than_chunk_size() -> None:
    with pytest.raises(ValueError, match="chunk_overlap"):
        split_documents([_doc("text")], chunk_size=100, chunk_overlap=100)
