"""Overview questions, answered from the index rather than by a search.

"What is in my knowledge base?", "What documents do I have?", "Summarise my
documents", "Summarise report.pdf": a similarity search cannot answer these (no
passage says "this knowledge base contains ..."). They are recognised by
`parse_overview` and answered from what is indexed: every source with its type, size
and date, and for each source its key sentences, taken from the chunks nearest the
source's mean embedding (its centre: what it is mostly about) and, within those
chunks, the sentences nearest that centre. The key sentences' chunks become the
answer's numbered passages, so their citations open like any other.

The overview covers the spaces the question is asked over: the same `SearchScope`
a search of that question reads (the asker's memberships, narrowed to the spaces
asked for), read on the read engine inside the asker's `ReadScope`, so row-level
security hides every other space's rows as well.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine

from db.chunks import CentralChunk, SourceKey, SourceSummary, central_chunks, list_sources
from db.scoped import ReadScope, read_scope
from db.spaces import PERSONAL_NAME
from retrieval.extractive import NEAR_DUPLICATE, QuotedSentence, SentenceVectors, terms
from retrieval.passages import Passage
from retrieval.prompts import neutralize_citations
from retrieval.scope import SearchScope
from retrieval.sentences import quotable, sentence_spans

__all__ = [
    "Overview",
    "OverviewRequest",
    "SourceDigest",
    "load_overview",
    "match_sources",
    "overview_passages_text",
    "parse_overview",
    "render_overview",
    "render_source_list",
]

# Sources given key sentences in a whole-knowledge-base overview (newest first); the
# rest are listed with their sizes only. Bounds the embedding work of one answer.
MAX_DIGESTS = 8
SENTENCES_PER_SOURCE = 2
SENTENCES_ONE_SOURCE = 4
CENTRAL_CHUNKS = 3
MAX_LISTED = 50

_KB = (
    r"(?:(?:my|the|our|this|all(?: of)?(?: my| the)?)\s+)?"
    r"(?:knowledge[\s-]?base|kb|documents?|docs|files?|sources?|library|uploads?|"
    r"collection|index|notes|pages|content|data)"
)
_ALL = [
    rf"\bwhat(?:'s|\s+is|\s+do\s+i\s+have|\s+have\s+i\s+got)?\s+(?:stored\s+)?in(?:side)?\s+{_KB}",
    r"\b(?:what|which)\s+(?:documents?|docs|files?|sources?|pages|notes)\b"
    r"(?:\s+(?:do|did)\s+i\s+have|\s+have\s+i\b|\s+are\s+(?:there|in|indexed|available))",
    rf"\b(?:list|show)(?:\s+me)?(?:\s+all)?\s+{_KB}",
    rf"\b(?:summari[sz]e|summary\s+of|overview\s+of|sum\s+up|outline)\s+(?:all\s+)?"
    rf"(?:of\s+)?(?:everything|{_KB})",
    rf"\b(?:main\s+)?(?:topics|themes|subjects)\s+(?:of|in|covered\s+(?:by|in))\s+{_KB}",
    rf"\bwhat\s+(?:is|are)\s+{_KB}\s+about\b",
    r"\bwhat\s+do\s+(?:you|i)\s+(?:know|have)\b(?:\s+about\s+me)?\s*\??$",
]
_ALL_RE = [re.compile(p, re.IGNORECASE) for p in _ALL]
_ONE = re.compile(
    r"^\s*(?:please\s+|can\s+you\s+|could\s+you\s+)?"
    r"(?:summari[sz]e|sum\s+up|give\s+(?:me\s+)?(?:a\s+|an\s+)?(?:short\s+|brief\s+)?"
    r"(?:summary|overview)\s+of|(?:a\s+)?(?:summary|overview)\s+of|what\s+is\s+in|"
    r"what's\s+in|what\s+is|what's)\s+(?P<name>.+?)(?P<about>\s+about)?\s*[?.!]*\s*$",
    re.IGNORECASE,
)
_NAME_NOISE_WORDS = "the a an file document doc page my this that please"
_NAME_NOISE = frozenset(_NAME_NOISE_WORDS.split())


@dataclass(frozen=True)
class OverviewRequest:
    """An overview question: of everything, or of the sources `name` designates."""

    name: str | None = None  # None: the whole knowledge base
    # "what is X about" / "what is X" need a source to match X; otherwise it is an
    # ordinary question ("what is the warranty?").
    needs_match: bool = False


def parse_overview(question: str) -> OverviewRequest | None:
    """The overview asked for, or None for an ordinary question."""
    text = " ".join(question.split())
    if any(p.search(text) for p in _ALL_RE):
        return OverviewRequest()
    match = _ONE.match(text)
    if match:
        opener = text[: match.start("name")].lower()
        name = match.group("name").strip(" \"'`“”‘’")
        asks_what = opener.lstrip().startswith("what")
        if asks_what and not match.group("about") and "in" not in opener.split():
            return None  # "what is X?" is a question about X, not a summary
        if name:
            return OverviewRequest(name=name, needs_match=True)
    return None


def _name_terms(text: str) -> set[str]:
    return {t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in _NAME_NOISE}


def match_sources(sources: Sequence[SourceSummary], name: str) -> list[SourceSummary]:
    """The sources `name` designates: by id or title, whole or in part, or by all of its
    words ("the federal register pdf" -> federal-register-2020-17221.pdf)."""
    wanted = name.strip().lower()
    exact = [s for s in sources if wanted in (s.source_id.lower(), (s.title or "").lower())]
    if exact:
        return exact
    partial = [
        s for s in sources if wanted in s.source_id.lower() or wanted in (s.title or "").lower()
    ]
    if partial:
        return partial
    words = _name_terms(name)
    if not words:
        return []
    return [s for s in sources if words <= _name_terms(f"{s.source_id} {s.title or ''}")]


@dataclass(frozen=True)
class SourceDigest:
    """One source of the overview and its key sentences (numbers = passage numbers)."""

    source: SourceSummary
    sentences: list[QuotedSentence] = field(default_factory=list)


@dataclass(frozen=True)
class Overview:
    """Everything an overview answer shows; `passages` are numbered [1].. in order."""

    sources: list[SourceSummary]
    digests: list[SourceDigest]
    passages: list[Passage]
    named: str | None = None
    # The names of the spaces covered (id -> name): a shared space's sources say where.
    space_names: dict[uuid.UUID, str] = field(default_factory=dict)

    @property
    def quotes(self) -> list[QuotedSentence]:
        return [q for d in self.digests for q in d.sentences]


def _passage(chunk: CentralChunk, space_names: dict[uuid.UUID, str]) -> Passage:
    # The space as the searches record it, so the citation panel names a shared space.
    metadata = {
        **chunk.metadata,
        "space_id": str(chunk.space_id),
        "space_name": space_names.get(chunk.space_id),
    }
    return Passage(
        chunk_id=chunk.chunk_id,
        text=chunk.text,
        source_type=chunk.source_type,
        source_id=chunk.source_id,
        source_url=chunk.source_url,
        chunk_index=chunk.chunk_index,
        score=chunk.similarity,
        similarity=chunk.similarity,
        metadata=metadata,
    )


def _key_sentences(
    chunks: Sequence[CentralChunk], vectors: SentenceVectors | None, limit: int
) -> list[tuple[CentralChunk, str, float]]:
    """The sentences of a source's central chunks nearest its centre, best first, one
    per chunk before a second, no near copies."""
    candidates: list[tuple[CentralChunk, str]] = []
    for chunk in chunks:
        for sentence in sentence_spans(chunk.text):
            if quotable(sentence):
                candidates.append((chunk, sentence.text))
    if not candidates:
        return []
    if vectors is not None:
        centre = np.asarray(chunks[0].centroid, dtype=np.float32)
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        scores = [float(s) for s in vectors.vectors([t for _, t in candidates]) @ centre]
    else:  # no model: longer sentences of the most central chunk first
        scores = [c.similarity + min(len(t), 300) / 3000 for c, t in candidates]
    ranked = sorted(zip(candidates, scores, strict=True), key=lambda x: -x[1])
    chosen: list[tuple[CentralChunk, str, float]] = []
    used_chunks: set[str] = set()
    bags: list[set[str]] = []
    for second_round in (False, True):
        for (chunk, text), score in ranked:
            if len(chosen) >= limit:
                break
            if not second_round and chunk.chunk_id in used_chunks:
                continue
            bag = set(terms(text))
            if any(text == t for _, t, _ in chosen) or any(
                len(bag & b) >= NEAR_DUPLICATE * min(len(bag), len(b) or 1) for b in bags
            ):
                continue
            chosen.append((chunk, text, score))
            used_chunks.add(chunk.chunk_id)
            bags.append(bag)
    return chosen


def _digest(
    sources: Sequence[SourceSummary],
    chunks: Sequence[CentralChunk],
    vectors: SentenceVectors | None,
    per_source: int,
    space_names: dict[uuid.UUID, str],
) -> tuple[list[SourceDigest], list[Passage]]:
    by_source: dict[SourceKey, list[CentralChunk]] = {}
    for chunk in chunks:
        by_source.setdefault((chunk.space_id, chunk.source_type, chunk.source_id), []).append(chunk)
    passages: list[Passage] = []
    numbers: dict[str, int] = {}
    digests = []
    for source in sources:
        picked = _key_sentences(
            by_source.get((source.space_id, source.source_type, source.source_id), []),
            vectors,
            per_source,
        )
        quoted = []
        for chunk, text, score in picked:
            if chunk.chunk_id not in numbers:
                passages.append(_passage(chunk, space_names))
                numbers[chunk.chunk_id] = len(passages)
            quoted.append(QuotedSentence(number=numbers[chunk.chunk_id], text=text, score=score))
        digests.append(SourceDigest(source=source, sentences=quoted))
    return digests, passages


async def load_overview(
    request: OverviewRequest,
    *,
    engine: AsyncEngine,
    user_id: uuid.UUID,
    scope: SearchScope,
    vectors: SentenceVectors | None,
) -> Overview | None:
    """The overview `request` asks for over the spaces of `scope` (resolved for
    `user_id`, see `Retriever.scope`), or None when it names no source there (then
    the question is an ordinary one)."""
    sources: list[SourceSummary] = []
    chunks: list[CentralChunk] = []
    chosen = sources
    if scope.spaces:
        with read_scope(ReadScope(user_id=user_id)):
            async with engine.connect() as connection:
                sources = await connection.run_sync(
                    lambda c: list_sources(c, space_ids=scope.space_ids)
                )
                chosen = sources
                if request.name is not None:
                    chosen = match_sources(sources, request.name)
                    if not chosen:
                        return None
                keys = [(s.space_id, s.source_type, s.source_id) for s in chosen[:MAX_DIGESTS]]
                chunks = await connection.run_sync(
                    lambda c: central_chunks(c, sources=keys, per_source=CENTRAL_CHUNKS)
                )
    elif request.name is not None:
        return None
    digested = chosen[:MAX_DIGESTS]
    per_source = SENTENCES_ONE_SOURCE if len(digested) == 1 else SENTENCES_PER_SOURCE
    # Sentence embeddings are CPU work: off the event loop.
    digests, passages = await asyncio.to_thread(
        _digest, digested, chunks, vectors, per_source, scope.spaces
    )
    listed = chosen if request.name is not None else sources
    return Overview(
        sources=listed,
        digests=digests,
        passages=passages,
        named=request.name,
        space_names=dict(scope.spaces),
    )


def _kind(source: SourceSummary) -> str:
    if source.source_type == "notion":
        return "Notion page"
    suffix = source.source_id.rsplit(".", 1)[-1] if "." in source.source_id else ""
    return f"{suffix.upper()} file" if 1 <= len(suffix) <= 5 else source.source_type


def _describe(source: SourceSummary, space_names: dict[uuid.UUID, str]) -> str:
    parts = [_kind(source)]
    space = space_names.get(source.space_id)
    if space and space != PERSONAL_NAME:  # a shared space is named; one's own goes unsaid
        parts.append(f"space {space}")
    if source.pages:
        parts.append(f"{source.pages} page{'s' * (source.pages != 1)}")
    parts.append(f"{source.chunks} chunk{'s' * (source.chunks != 1)}")
    when = source.created_at or source.updated_at
    parts.append(f"added {when:%Y-%m-%d}")
    if source.created_at and source.updated_at.date() != source.created_at.date():
        parts.append(f"updated {source.updated_at:%Y-%m-%d}")
    return " · ".join(parts)


def _name(source: SourceSummary) -> str:
    title = source.title if source.title and source.title != source.source_id else None
    return f"{title} ({source.source_id})" if title else source.source_id


def render_source_list(overview: Overview) -> str:
    """The heading and one line per source (name, type, size, dates)."""
    sources = overview.sources
    if not sources:
        return (
            "Your knowledge base is empty: drop files into the chat (or use `/upload`), "
            "or connect Notion with `/notion`."
        )
    chunks = sum(s.chunks for s in sources)
    if overview.named is not None:
        head = f"**{len(sources)} source{'s' * (len(sources) != 1)} match “{overview.named}”:**"
    else:
        head = (
            f"**Your knowledge base has {len(sources)} source{'s' * (len(sources) != 1)} "
            f"({chunks} chunks):**"
        )
    lines = [head, ""]
    for i, source in enumerate(sources[:MAX_LISTED], start=1):
        lines.append(f"{i}. **{_name(source)}** — {_describe(source, overview.space_names)}")
    if len(sources) > MAX_LISTED:
        lines.append(f"\n…and {len(sources) - MAX_LISTED} more (`/sources` lists them all).")
    return "\n".join(lines)


def render_overview(overview: Overview) -> Iterator[str]:
    """The extractive overview in pieces: the source list, then each source's key
    sentences, quoted and cited."""
    yield render_source_list(overview)
    digests = [d for d in overview.digests if d.sentences]
    if not digests:
        return
    yield (
        "\n\nNo language model is configured, so here are the key sentences of each "
        "source (those closest to what the whole source is about), quoted:"
    )
    for digest in digests:
        yield f"\n\n**{_name(digest.source)}**\n"
        for quote in digest.sentences:
            yield f"\n> “{neutralize_citations(quote.text)}” [{quote.number}]\n"
    if len(overview.digests) < len(overview.sources):
        rest = len(overview.sources) - len(overview.digests)
        yield f"\n\n({rest} more source{'s' * (rest != 1)} not summarised here.)"


def overview_passages_text(overview: Overview) -> str:
    """The key sentences grouped by source and numbered by passage, for an LLM prompt."""
    blocks = []
    for digest in overview.digests:
        if not digest.sentences:
            continue
        lines = [
            f"Source: {_name(digest.source)} ({_describe(digest.source, overview.space_names)})"
        ]
        lines += [f"[{q.number}] {neutralize_citations(q.text)}" for q in digest.sentences]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
