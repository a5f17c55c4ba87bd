"""Imports point one way: chat_app -> ingest, retrieval -> db; ingest and retrieval
are siblings that never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "db": {"chat_app", "ingest", "retrieval"},
    "retrieval": {"chat_app", "ingest"},
    "ingest": {"chat_app", "retrieval"},
}


def _imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_packages_do_not_import_higher_ones(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_package_registers_exit_hooks_for_its_own_resources() -> None:
    # Resources belong to the composition root (`chat_app.services.Services`), which
    # closes them; a module-level atexit hook would hide who owns what.
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("chat_app", "retrieval", "ingest", "db")
        for path in (ROOT / package).rglob("*.py")
        if "atexit" in _imported_packages(path)
    ]
    assert offenders == []
