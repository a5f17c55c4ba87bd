"""A fake Notion API on 127.0.0.1: real sockets, real JSON shapes, faults on demand.

Routes (under /v1), as in FINDINGS.md §6: POST search, GET pages/{id},
GET blocks/{id}, GET blocks/{id}/children, GET databases/{id},
GET data_sources/{id}, POST data_sources/{id}/query, GET users/me. Anything else
is 400 invalid_request_url. Requests need `Authorization: Bearer <token>` (else 401)
and `Notion-Version` (else 400 missing_version). Lists paginate with cursors that
are the next item's id, at most `max_page_size` items per page (small by default,
so every client loop is exercised). Every request is recorded by route kind.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_notion.workspace import BOT_ID, Node, Workspace

VERSIONS = ("2022-06-28", "2025-09-03", "2026-03-11")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
    r"[0-9a-fA-F]{12}$"
)
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/v1/search/?$"), "search"),
    ("GET", re.compile(r"^/v1/users/me/?$"), "users"),
    ("GET", re.compile(r"^/v1/pages/([^/]+)/?$"), "pages"),
    ("GET", re.compile(r"^/v1/blocks/([^/]+)/children/?$"), "blocks.children"),
    ("GET", re.compile(r"^/v1/blocks/([^/]+)/?$"), "blocks"),
    ("GET", re.compile(r"^/v1/databases/([^/]+)/?$"), "databases"),
    ("POST", re.compile(r"^/v1/data_sources/([^/]+)/query/?$"), "data_sources.query"),
    ("GET", re.compile(r"^/v1/data_sources/([^/]+)/?$"), "data_sources"),
]


@dataclass
class Fault:
    """An injected failure. Matches requests by route kind and/or a path fragment.

    `times=None` means forever; `every=n` hits every n-th matching request.
    `status=429` sends Retry-After (`retry_after`); `html=True` sends an HTML body
    (as a proxy's 502 does); `delay` answers late instead (timeouts).
    """

    status: int = 500
    code: str = "internal_server_error"
    message: str = "Unexpected error occurred."
    kind: str | None = None
    path_contains: str | None = None
    times: int | None = 1
    every: int | None = None
    retry_after: str | None = None
    html: bool = False
    delay: float = 0.0
    matched: int = 0
    fired: int = 0

    def applies(self, kind: str, path: str) -> bool:
        if self.kind is not None and self.kind != kind:
            return False
        if self.path_contains is not None and self.path_contains not in path:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.matched += 1
        if self.every is not None and self.matched % self.every:
            return False
        self.fired += 1
        return True


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    kind: str
    status: int
    at: float
    version: str | None


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, additional_data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.additional_data = additional_data


@dataclass
class FakeNotion:
    """Start with `with FakeNotion(workspace) as fake:`; point clients at `fake.url`."""

    workspace: Workspace
    max_page_size: int = 3
    search_delay_hides: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    rate_limit: tuple[float, float] | None = None  # (requests per second, burst)
    integration_name: str = "kb-fake"

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._bucket = (self.rate_limit[1] if self.rate_limit else 0.0, time.monotonic())

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> FakeNotion:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def do_PATCH(self) -> None:
                fake._handle(self)

            def do_DELETE(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- test hooks --------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def count(self, kind: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if kind is None or r.kind == kind)

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(r.kind for r in self.requests)

    def reset_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    # --- request handling --------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        method, path = handler.command, split.path
        kind = next((k for m, rx, k in _ROUTES if m == method and rx.match(path)), "unknown")
        version = handler.headers.get("Notion-Version")
        status, body, headers, delay = self._respond(
            method, path, kind, split.query, raw, handler.headers.get("Authorization"), version
        )
        if delay:
            time.sleep(delay)  # a slow server, to exercise client timeouts
        with self.lock:
            self.requests.append(Recorded(method, path, kind, status, time.monotonic(), version))
        request_id = str(uuid.uuid4())
        if isinstance(body, dict):
            body.setdefault("request_id", request_id)
            data = json.dumps(body).encode()
            content_type = "application/json; charset=utf-8"
        else:
            data, content_type = body.encode(), "text/html"
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("x-notion-request-id", request_id)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to answer

    def _respond(
        self,
        method: str,
        path: str,
        kind: str,
        query: str,
        raw: bytes,
        auth: str | None,
        version: str | None,
    ) -> tuple[int, dict[str, Any] | str, dict[str, str], float]:
        with self.lock:
            for fault in self.faults:
                if fault.applies(kind, path):
                    if fault.delay:
                        break  # answer normally, but late
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    if fault.html:
                        return fault.status, "<html><body>Bad gateway</body></html>", headers, 0
                    return fault.status, _error(fault.status, fault.code, fault.message), headers, 0
            else:
                fault = None
            delay = fault.delay if fault is not None else 0.0
            limited = self._rate_limited()
            if limited:
                return (
                    429,
                    _error(
                        429,
                        "rate_limited",
                        "You have been rate limited. Please try again in a few minutes.",
                    ),
                    {"Retry-After": "1"},
                    0,
                )
            try:
                if auth != f"Bearer {self.workspace.token}":
                    raise ApiError(401, "unauthorized", "API token is invalid.")
                if not version:
                    raise ApiError(
                        400,
                        "missing_version",
                        "Notion-Version header failed "
                        "validation: Notion-Version header should be defined, "
                        "instead was `undefined`.",
                    )
                if version not in VERSIONS:
                    raise ApiError(
                        400,
                        "validation_error",
                        f"Notion-Version header failed "
                        f"validation: unsupported version `{version}`.",
                    )
                if kind == "unknown" or (version == "2022-06-28" and kind.startswith("data_")):
                    raise ApiError(400, "invalid_request_url", "Invalid request URL.")
                body = json.loads(raw) if raw else {}
                params = {k: v[0] for k, v in parse_qs(query).items()}
                match = next(rx.match(path) for m, rx, k in _ROUTES if k == kind)
                arg = match.group(1) if match is not None and match.groups() else ""
                return 200, self._route(kind, arg, params, body, version), {}, delay
            except ApiError as error:
                return (
                    error.status,
                    _error(error.status, error.code, error.message, error.additional_data),
                    {},
                    delay,
                )

    def _rate_limited(self) -> bool:
        if self.rate_limit is None:
            return False
        rate, burst = self.rate_limit
        tokens, last = self._bucket
        now = time.monotonic()
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1:
            self._bucket = (tokens, now)
            return True
        self._bucket = (tokens - 1, now)
        return False

    # --- routes ------------------------------------------------------------------------

    def _route(
        self, kind: str, arg: str, params: dict[str, str], body: dict[str, Any], version: str
    ) -> dict[str, Any]:
        ws = self.workspace
        if kind == "users":
            return {
                "object": "user",
                "id": BOT_ID,
                "name": self.integration_name,
                "avatar_url": None,
                "type": "bot",
                "bot": {
                    "owner": {"type": "workspace", "workspace": True},
                    "workspace_name": ws.name,
                    "workspace_id": "231674b6-2cc1-46bc-b742-c5c9fe4b9c73",
                    "workspace_limits": {"max_file_upload_size_in_bytes": 5242880},
                },
            }
        if kind == "search":
            return self._search(body, version)
        node_kind = {
            "pages": "page",
            "blocks": "block",
            "blocks.children": "block",
            "databases": "database",
            "data_sources": "data_source",
            "data_sources.query": "data_source",
        }[kind]
        node = self._find(arg, node_kind, kind)
        if kind == "pages":
            return ws.page_json(node, version)
        if kind == "blocks":
            return ws.block_json(node, version)
        if kind == "databases":
            return ws.database_json(node, version)
        if kind == "data_sources":
            return ws.data_source_json(node, version)
        if kind == "blocks.children":
            items = [ws.block_json(c, version) for c in ws.visible_children(node)]
            return self._page_of(items, params, "block")
        rows = [
            ws.page_json(ws.nodes[c], version)
            for c in node.children
            if c in ws.nodes and not ws.trashed(ws.nodes[c])
        ]
        return self._page_of(rows, body, "page_or_data_source")

    def _find(self, raw_id: str, node_kind: str, kind: str) -> Node:
        field_name = {
            "page": "page_id",
            "block": "block_id",
            "database": "database_id",
            "data_source": "data_source_id",
        }[node_kind]
        if not _UUID.match(raw_id):
            raise ApiError(
                400,
                "validation_error",
                f"path failed validation: path."
                f'{field_name} should be a valid uuid, instead was `"{raw_id}"`.',
            )
        object_id = str(uuid.UUID(raw_id))
        node = self.workspace.nodes.get(object_id)
        ok = (
            node is not None
            and self.workspace.accessible(node)
            and (
                node.object == node_kind
                or (node_kind == "block" and node.object in ("page", "database"))
            )
        )
        if not ok or node is None:
            noun = {"data_source": "data source"}.get(node_kind, node_kind)
            raise ApiError(
                404,
                "object_not_found",
                f"Could not find {noun} with ID: {object_id}. Make sure the relevant"
                f" pages and databases are shared with your integration "
                f'"{self.integration_name}".',
                {"integration_id": BOT_ID},
            )
        return node

    def _search(self, body: dict[str, Any], version: str) -> dict[str, Any]:
        ws = self.workspace
        wanted = (body.get("filter") or {}).get("value")
        text = str(body.get("query") or "").lower()
        direction = (body.get("sort") or {}).get("direction", "descending")
        found: list[Node] = []
        for object_id in ws.order:
            node = ws.nodes[object_id]
            if node.object not in ("page", "data_source") or not node.searchable:
                continue
            if object_id in self.search_delay_hides or not ws.accessible(node):
                continue
            if ws.trashed(node) or (wanted and node.object != wanted):
                continue
            if text and text not in node.title.lower():
                continue
            found.append(node)
        found.sort(key=lambda n: n.edited, reverse=direction == "descending")
        items = [
            ws.page_json(n, version) if n.object == "page" else ws.data_source_json(n, version)
            for n in found
        ]
        return self._page_of(items, body, "page_or_data_source")

    def _page_of(
        self, items: list[dict[str, Any]], params: dict[str, Any], list_type: str
    ) -> dict[str, Any]:
        size = params.get("page_size", 100)
        try:
            size = int(size)
        except (TypeError, ValueError):
            size = 0
        if not 1 <= size <= 100:
            raise ApiError(
                400,
                "validation_error",
                "body failed validation: "
                "body.page_size should be ≤ `100`, instead was "
                f"`{params.get('page_size')}`.",
            )
        start = 0
        cursor = params.get("start_cursor")
        if cursor:
            ids = [i["id"] for i in items]
            if cursor not in ids:
                raise ApiError(
                    400, "validation_error", f"start_cursor provided is invalid: {cursor}"
                )
            start = ids.index(cursor)
        end = start + min(size, self.max_page_size)
        more = end < len(items)
        return {
            "object": "list",
            "results": items[start:end],
            "next_cursor": items[end]["id"] if more else None,
            "has_more": more,
            "type": list_type,
            list_type: {},
        }


def _error(
    status: int, code: str, message: str, additional_data: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"object": "error", "status": status, "code": code, "message": message}
    if additional_data:
        body["additional_data"] = additional_data
    return body
