"""Phase 1: legacy `users` -> `users`, keeping bcrypt hashes so old passwords still work.

Rules (docs/legacy-schema.md):
- key = `user_id`, else `id`; identifier = lower-case email, else lower-case key.
- Emails (identifiers) that differ only in case: the earliest account (created_at,
  then id) is kept; the others are merged into it: their conversations, logs and
  chunks are attached to the kept account, their password is not used.
- An identifier that already exists in the target under another id: the existing
  account is kept as it is and the legacy data is attached to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from db.models import User
from db.spaces import ensure_personal_spaces
from ingest.legacy import mapping
from ingest.legacy.coerce import (
    chainlit_timestamp,
    parse_bool,
    parse_int,
    parse_text,
    parse_timestamp,
)
from ingest.legacy.report import TableReport
from ingest.legacy.sqlite_source import LegacySqlite
from ingest.legacy.state import RunState, UserRef, batched

__all__ = ["migrate_users"]

_users = cast(sa.Table, User.__table__)
_HASH_PREFIXES = ("$2a$", "$2b$", "$2y$", "$argon2")
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _LegacyUser:
    key: str
    row_id: str
    identifier: str
    email: str | None
    password_hash: str | None
    full_name: str | None
    is_active: bool
    created_at: datetime | None
    numeric_id: int | None


def _read(source: LegacySqlite, table: TableReport) -> list[_LegacyUser]:
    seen: set[str] = set()
    users = []
    for row in source.rows("users"):
        table.read += 1
        key = parse_text(row["user_id"]) or parse_text(row["id"])
        row_id = key or f"row {table.read}"
        if key is None:
            table.skip(row_id, "no user_id and no id")
            continue
        if key in seen:
            table.skip(row_id, f"duplicate user_id {key!r}")
            continue
        seen.add(key)
        email = parse_text(row["email"])
        password_hash = parse_text(row["hashed_password"])
        if password_hash and not password_hash.startswith(_HASH_PREFIXES):
            table.note(row_id, "unrecognised password hash: password must be reset", action="kept")
            password_hash = None
        created = parse_timestamp(row["created_at"])
        if row["created_at"] is not None and created is None:
            table.note(row_id, f"unreadable created_at {row['created_at']!r}", action="defaulted")
        users.append(
            _LegacyUser(
                key=key,
                row_id=row_id,
                identifier=(email or key).lower(),
                email=email.lower() if email else None,
                password_hash=password_hash,
                full_name=parse_text(row["full_name"]),
                is_active=parse_bool(row["is_active"], default=True),
                created_at=created,
                numeric_id=parse_int(row["id"]),
            )
        )
    return users


def _existing(state: RunState, identifiers: list[str]) -> dict[str, UserRef]:
    query = sa.select(_users.c.id, _users.c.identifier, _users.c.email).where(
        sa.or_(_users.c.identifier.in_(identifiers), sa.func.lower(_users.c.email).in_(identifiers))
    )
    found: dict[str, UserRef] = {}
    with state.target.unscoped() as conn:
        for row in conn.execute(query):
            ref = UserRef(row.id, row.identifier)
            found[row.identifier] = ref
            if row.email:
                found[row.email.lower()] = ref
    return found


def _row(user: _LegacyUser, now: datetime) -> dict[str, Any]:
    created = user.created_at or now
    return {
        "id": mapping.user_id(user.key),
        "identifier": user.identifier,
        "metadata": {"legacy_user_id": user.key},
        "createdAt": chainlit_timestamp(created),
        "email": user.email,
        "password_hash": user.password_hash,
        "display_name": user.full_name,
        "is_active": user.is_active,
        "is_admin": False,
        "created_at": created,
        "updated_at": created,
    }


def migrate_users(source: LegacySqlite, state: RunState) -> None:
    table = state.report.table("users", "users")
    state.announce("users", source.count("users"))
    legacy = _read(source, table)

    groups: dict[str, list[_LegacyUser]] = {}
    for user in legacy:
        groups.setdefault(user.identifier, []).append(user)
    keepers: list[_LegacyUser] = []
    for identifier, group in groups.items():
        group.sort(key=lambda u: (u.created_at or _FAR_FUTURE, u.numeric_id or 0, u.key))
        kept, *duplicates = group
        keepers.append(kept)
        for dup in duplicates:
            table.skip(
                dup.row_id,
                f"email {identifier!r} differs only in case from user {kept.key!r} "
                "(kept: the earliest)",
                action="merged",
            )

    existing = _existing(state, [u.identifier for u in keepers]) if keepers else {}
    to_write: list[_LegacyUser] = []
    for user in keepers:
        ours = mapping.user_id(user.key)
        found = existing.get(user.identifier)
        if found is not None and found.id != ours:
            table.skip(
                user.row_id,
                f"{user.identifier!r} already has an account in the target; kept as it is, "
                "legacy data attached to it",
                action="merged",
            )
            ref = found
        else:
            ref = UserRef(ours, user.identifier)
            to_write.append(user)
        for member in groups[user.identifier]:
            state.users[member.key] = ref
        state.users.setdefault(user.identifier, ref)

    now = datetime.now(UTC)
    done = 0
    for number, batch in enumerate(batched(to_write, state.options.batch_size), start=1):
        stmt = pg_insert(_users).values([_row(u, now) for u in batch]).on_conflict_do_nothing()
        with state.target.unscoped() as conn:
            written = len(conn.execute(stmt.returning(_users.c.id)).all())
        table.written += written
        table.present += len(batch) - written
        done += len(batch)
        state.batch_done("users", number, done, len(to_write))
    # Legacy content goes into each person's personal space.
    with state.target.unscoped() as conn:
        state.personal_spaces.update(
            ensure_personal_spaces(conn, user_ids=sorted({u.id for u in state.users.values()}))
        )
