"""JSON and JSON Lines as readable text.

An array of objects (or a `.jsonl` file) becomes records, one per line,
`key: value; nested.key: value`, grouped `RECORDS_PER_PART` to a part with
`record_start`/`record_end` (1-based). Anything else becomes one `path.to.key: value`
line per value (`items[0].name: ...`). Lists of plain values are joined with ", ";
nulls and empty strings are left out. The title is a top-level "title" or "name" string.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ingest.errors import CorruptFile, EmptyFile
from ingest.loaders.encoding import decode_text
from ingest.loaders.normalise import normalise_text, one_line
from ingest.loaders.source import Extracted, Part, SourceFile

RECORDS_PER_PART = 25


def load_json(source: SourceFile) -> Extracted:
    decoded = decode_text(source)
    text = decoded.text.lstrip("\ufeff")
    if source.extension in (".jsonl", ".ndjson"):
        data: Any = _parse_lines(source, text)
    else:
        data = _parse(source, text)
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        parts = _record_parts(data)
    else:
        lines = [f"{path}: {value}" if path else value for path, value in _flatten(data)]
        parts = [Part(normalise_text("\n".join(lines)))] if lines else []
    parts = [part for part in parts if part.text]
    if not parts:
        raise EmptyFile(
            f"{source.name} holds no values (only empty objects, arrays or nulls).",
            file_name=source.name,
        )
    title = None
    if isinstance(data, dict):
        for key in ("title", "name"):
            if isinstance(data.get(key), str) and (candidate := one_line(data[key])):
                title = candidate
                break
    return Extracted(parts=parts, title=title, metadata={"encoding": decoded.encoding})


def _parse(source: SourceFile, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            # Several values one after another: JSON Lines saved as .json.
            try:
                return _parse_lines(source, text)
            except CorruptFile:
                pass
        raise CorruptFile(
            f"{source.name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            file_name=source.name,
            hint="Fix the JSON there (a validator or `python -m json.tool` shows the spot) "
            "and upload it again.",
        ) from None
    except RecursionError:
        raise CorruptFile(
            f"{source.name} is nested too deeply to read.", file_name=source.name
        ) from None


def _parse_lines(source: SourceFile, text: str) -> list[Any]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise CorruptFile(
                f"{source.name} is not valid JSON Lines: {exc.msg} at line {number}, "
                f"column {exc.colno}.",
                file_name=source.name,
                hint="Each line must be one complete JSON value; fix that line and upload "
                "it again.",
            ) from None
    return items


def _record_parts(items: list[Any]) -> list[Part]:
    parts = []
    for start in range(0, len(items), RECORDS_PER_PART):
        batch = items[start : start + RECORDS_PER_PART]
        records = []
        for item in batch:
            fields = [f"{path}: {value}" for path, value in _flatten(item) if path]
            if fields:
                records.append("; ".join(fields))
        if records:
            parts.append(
                Part(
                    normalise_text("\n".join(records)),
                    {"record_start": start + 1, "record_end": start + len(batch)},
                )
            )
    return parts


def _flatten(data: Any) -> Iterator[tuple[str, str]]:
    """(path, value) for every leaf, in document order, without recursion (deep files)."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            children = [
                (f"{path}.{key}" if path else str(key), child) for key, child in value.items()
            ]
            stack.extend(reversed(children))
        elif isinstance(value, list):
            if all(not isinstance(item, (dict, list)) for item in value):
                joined = ", ".join(text for item in value if (text := _scalar(item)))
                if joined:
                    yield path, joined
            else:
                stack.extend(reversed([(f"{path}[{i}]", item) for i, item in enumerate(value)]))
        elif text := _scalar(value):
            yield path, text


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return one_line(value)
    return json.dumps(value)
