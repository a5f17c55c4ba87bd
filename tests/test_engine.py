"""Database URLs: any PostgreSQL scheme becomes psycopg 3; passwords are masked."""

from __future__ import annotations

import pytest

from db.engine import mask_url, normalize_url
from db.errors import DatabaseUnavailable


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db:5432/kb",
        "postgres://u:p@db:5432/kb",
        "postgresql+psycopg2://u:p@db:5432/kb",
        "postgresql+asyncpg://u:p@db:5432/kb",
    ],
)
def test_any_postgresql_url_is_normalised_to_psycopg3(url: str) -> None:
    assert normalize_url(url) == "postgresql+psycopg://u:p@db:5432/kb"


def test_non_postgresql_url_is_refused_with_an_example() -> None:
    with pytest.raises(DatabaseUnavailable, match="Unsupported database URL") as info:
        normalize_url("sqlite:///kb.db")
    assert info.value.hint and "postgresql://" in info.value.hint


def test_mask_hides_password() -> None:
    assert mask_url("postgresql://u:secret@db/kb") == "postgresql://u:***@db/kb"
