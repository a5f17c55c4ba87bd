"""A Notion workspace in memory, serialised in the real API's shapes (2025-09-03).

Pages, databases, data sources and blocks are nodes in one id space: a page's id is
also the id of the `child_page` block that holds it, as in Notion. Timestamps are
truncated to the minute and come from a clock that advances one minute per edit,
so a test's edit always changes `last_edited_time` (deterministically, no sleeping).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fake_notion.builders import BlockSpec, paragraph, rich

BOT_ID = "7775f3a3-893f-43fa-b625-460c61094c78"
USER = {"object": "user", "id": "2200a911-6a96-44bb-bd38-6bfb1e01b9f6"}
_EPOCH = datetime(2026, 7, 4, 9, 0, tzinfo=UTC)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Node:
    id: str
    object: str  # page | database | data_source | block
    parent: tuple[str, str | None]  # (page_id|block_id|data_source_id|database_id|workspace, id)
    created: int  # clock minute
    edited: int
    type: str | None = None  # block type
    payload: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    properties: dict[str, Any] = field(default_factory=dict)  # row values / ds schema
    children: list[str] = field(default_factory=list)
    in_trash: bool = False
    shared: bool | None = None  # None: inherit from the parent
    searchable: bool = True
    data_sources: list[str] = field(default_factory=list)  # databases


class Workspace:
    """The content a fake server serves; mutate it between syncs with the hooks."""

    def __init__(self, *, name: str = "Fake workspace", token: str | None = None) -> None:
        self.name = name
        self.token = token or f"ntn_{uuid.uuid4().hex}"
        self.nodes: dict[str, Node] = {}
        self.order: list[str] = []  # creation order, for stable listings
        self.minute = 0

    # --- clock -------------------------------------------------------------------------

    def tick(self) -> int:
        self.minute += 1
        return self.minute

    @staticmethod
    def timestamp(minute: int) -> str:
        return (_EPOCH + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:00.000Z")

    # --- building ----------------------------------------------------------------------

    def _add(self, node: Node) -> Node:
        self.nodes[node.id] = node
        self.order.append(node.id)
        return node

    def add_page(
        self,
        title: str,
        blocks: Sequence[BlockSpec] = (),
        *,
        parent: str | None = None,
        searchable: bool = True,
        shared: bool | None = None,
        id: str | None = None,
    ) -> str:
        """A page at the top level (shared with the integration) or inside `parent`."""
        if parent is None:
            where: tuple[str, str | None] = ("workspace", None)
            shared = True if shared is None else shared
        else:
            where = (
                ("page_id", parent) if self.nodes[parent].object == "page" else ("block_id", parent)
            )
        node = self._add(
            Node(
                id or new_id(),
                "page",
                where,
                self.minute,
                self.minute,
                title=title,
                shared=shared,
                searchable=searchable,
            )
        )
        if parent is not None:
            self.nodes[parent].children.append(node.id)
        self._add_blocks(node.id, blocks)
        return node.id

    def add_database(
        self,
        title: str,
        *,
        parent: str,
        schema: dict[str, str] | None = None,
        searchable: bool = True,
    ) -> tuple[str, str]:
        """A database in page `parent` with one data source; returns (database, source)."""
        schema = {"Name": "title", **(schema or {})}
        database = self._add(
            Node(
                new_id(),
                "database",
                ("page_id", parent),
                self.minute,
                self.minute,
                title=title,
                searchable=searchable,
            )
        )
        source = self._add(
            Node(
                new_id(),
                "data_source",
                ("database_id", database.id),
                self.minute,
                self.minute,
                title=title,
                properties=schema,
                searchable=searchable,
            )
        )
        database.data_sources.append(source.id)
        self.nodes[parent].children.append(database.id)
        return database.id, source.id

    def add_row(
        self, data_source_id: str, values: dict[str, Any], blocks: Sequence[BlockSpec] = ()
    ) -> str:
        """A database row (a page); `values` by property name, the title under 'Name'."""
        source = self.nodes[data_source_id]
        node = self._add(
            Node(
                new_id(),
                "page",
                ("data_source_id", data_source_id),
                self.minute,
                self.minute,
                title=str(values.get("Name", "")),
                properties=dict(values),
            )
        )
        source.children.append(node.id)
        self._add_blocks(node.id, blocks)
        return node.id

    def _add_blocks(self, parent_id: str, specs: Sequence[BlockSpec]) -> None:
        parent = self.nodes[parent_id]
        kind = "page_id" if parent.object == "page" else "block_id"
        for spec in specs:
            node = self._add(
                Node(
                    spec.id or new_id(),
                    "block",
                    (kind, parent_id),
                    self.minute,
                    self.minute,
                    type=spec.type,
                    payload=dict(spec.payload),
                )
            )
            parent.children.append(node.id)
            self._add_blocks(node.id, spec.children)

    # --- hooks -------------------------------------------------------------------------

    def edit_page(
        self,
        page_id: str,
        *,
        append: str | None = None,
        blocks: Sequence[BlockSpec] | None = None,
        title: str | None = None,
    ) -> None:
        """Change a page (append a paragraph, replace its blocks, rename): bumps its time."""
        page = self.nodes[page_id]
        if blocks is not None:
            page.children = [c for c in page.children if self.nodes[c].object != "block"]
            self._add_blocks(page_id, blocks)
        if append is not None:
            self._add_blocks(page_id, [paragraph(append)])
        if title is not None:
            page.title = title
            if "Name" in page.properties:
                page.properties["Name"] = title
        page.edited = self.tick()

    def trash(self, object_id: str) -> None:
        """Move to the trash (archive): still retrievable, gone from search and lists."""
        node = self.nodes[object_id]
        node.in_trash = True
        node.edited = self.tick()

    def restore(self, object_id: str) -> None:
        node = self.nodes[object_id]
        node.in_trash = False
        node.edited = self.tick()

    def delete(self, object_id: str) -> None:
        """Gone for good (404 afterwards), with everything inside it."""
        node = self.nodes.pop(object_id)
        self.order.remove(object_id)
        for child in list(node.children) + list(node.data_sources):
            if child in self.nodes:
                self.delete(child)
        parent = self.nodes.get(node.parent[1] or "")
        if parent is not None and object_id in parent.children:
            parent.children.remove(object_id)

    def unshare(self, object_id: str) -> None:
        """Remove the integration from the page's connections: 404 from now on."""
        self.nodes[object_id].shared = False

    # --- queries the server uses -------------------------------------------------------

    def accessible(self, node: Node) -> bool:
        current: Node | None = node
        while current is not None:
            if current.shared is not None:
                return current.shared
            current = self.nodes.get(current.parent[1] or "")
        return False

    def trashed(self, node: Node) -> bool:
        current: Node | None = node
        while current is not None:
            if current.in_trash:
                return True
            current = self.nodes.get(current.parent[1] or "")
        return False

    def visible_children(self, node: Node) -> list[Node]:
        return [
            self.nodes[c] for c in node.children if c in self.nodes and not self.nodes[c].in_trash
        ]

    def database_of(self, source: Node) -> Node:
        return self.nodes[str(source.parent[1])]

    # --- serialisation -----------------------------------------------------------------

    def _common(self, node: Node, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "created_time": self.timestamp(node.created),
            "last_edited_time": self.timestamp(node.edited),
            "created_by": dict(USER),
            "last_edited_by": dict(USER),
            "in_trash": self.trashed(node),
        }
        if version != "2026-03-11":
            out["archived"] = out["in_trash"]
        return out

    def _parent(self, node: Node) -> dict[str, Any]:
        kind, pid = node.parent
        if kind == "workspace":
            return {"type": "workspace", "workspace": True}
        if kind == "data_source_id":
            source = self.nodes[str(pid)]
            return {
                "type": "data_source_id",
                "data_source_id": pid,
                "database_id": source.parent[1],
            }
        return {"type": kind, kind: pid}

    def url(self, node: Node) -> str:
        slug = "-".join(node.title.split()) or "Untitled"
        return f"https://app.notion.com/p/{slug}-{node.id.replace('-', '')}"

    def page_json(self, node: Node, version: str) -> dict[str, Any]:
        if node.parent[0] == "data_source_id":
            schema = self.nodes[str(node.parent[1])].properties
            properties = {
                name: _property(name, kind, node.properties.get(name))
                for name, kind in schema.items()
            }
        else:
            properties = {"title": {"id": "title", "type": "title", "title": rich(node.title)}}
        return {
            "object": "page",
            "id": node.id,
            **self._common(node, version),
            "cover": None,
            "icon": None,
            "parent": self._parent(node),
            "is_archived": self.trashed(node),
            "is_locked": False,
            "properties": properties,
            "url": self.url(node),
            "public_url": None,
        }

    def database_json(self, node: Node, version: str) -> dict[str, Any]:
        return {
            "object": "database",
            "id": node.id,
            "title": rich(node.title),
            "description": [],
            "parent": self._parent(node),
            "is_inline": False,
            "is_locked": False,
            **self._common(node, version),
            "data_sources": [
                {"id": s, "name": self.nodes[s].title} for s in node.data_sources if s in self.nodes
            ],
            "icon": None,
            "cover": None,
            "url": self.url(node),
            "public_url": None,
        }

    def data_source_json(self, node: Node, version: str) -> dict[str, Any]:
        database = self.database_of(node)
        return {
            "object": "data_source",
            "id": node.id,
            "cover": None,
            "icon": None,
            **self._common(node, version),
            "title": rich(node.title),
            "description": [],
            "is_inline": False,
            "properties": {
                name: {"id": name[:4], "name": name, "description": None, "type": kind, kind: {}}
                for name, kind in node.properties.items()
            },
            "parent": {"type": "database_id", "database_id": database.id},
            "database_parent": self._parent(database),
            "url": self.url(database),
            "public_url": None,
        }

    def block_json(self, node: Node, version: str) -> dict[str, Any]:
        """A block; pages and databases appear as child_page / child_database blocks."""
        if node.object == "page":
            kind, payload = "child_page", {"title": node.title}
        elif node.object == "database":
            kind, payload = "child_database", {"title": node.title}
        else:
            kind, payload = str(node.type), node.payload
        return {
            "object": "block",
            "id": node.id,
            "parent": self._parent(node),
            **self._common(node, version),
            "has_children": bool(self.visible_children(node)) and kind != "child_database",
            "type": kind,
            kind: payload,
        }


def _property(name: str, kind: str, value: Any) -> dict[str, Any]:
    prop: dict[str, Any] = {"id": name[:4], "type": kind}
    if kind in ("title", "rich_text"):
        prop[kind] = rich(str(value or ""))
    elif kind in ("select", "status"):
        prop[kind] = {"id": new_id(), "name": value, "color": "default"} if value else None
    elif kind == "multi_select":
        prop[kind] = [{"id": new_id(), "name": v, "color": "default"} for v in value or []]
    elif kind == "date":
        prop[kind] = {"start": value, "end": None, "time_zone": None} if value else None
    elif kind == "checkbox":
        prop[kind] = bool(value)
    else:  # number, url, email, phone_number
        prop[kind] = value
    return prop
