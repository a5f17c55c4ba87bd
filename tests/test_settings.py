"""Settings: every one is documented in .env.example; only chat_app reads the environment."""

from __future__ import annotations

import re
from pathlib import Path

from chat_app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _env_names(field: str) -> set[str]:
    info = Settings.model_fields[field]
    names = {f"KB_{field.upper()}"}
    alias = info.validation_alias
    if alias is not None and hasattr(alias, "choices"):
        names |= {str(c) for c in alias.choices}
    return names


def test_every_setting_is_documented_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text()
    missing = [f for f in Settings.model_fields if not any(n + "=" in text for n in _env_names(f))]
    assert missing == []


def test_database_url_is_read_from_the_standard_variable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@h/db")
    assert Settings(_env_file=None).database_url == "postgresql://u:p@h/db"  # type: ignore[call-arg]


def test_lower_packages_never_read_the_environment() -> None:
    offenders = []
    for package in ("db", "ingest", "retrieval"):
        for path in (ROOT / package).rglob("*.py"):
            if re.search(r"os\.environ\[|os\.getenv\(|os\.environ\.get\(", path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
