"""A fake Notion API server for tests and benchmarks (real HTTP on 127.0.0.1)."""

from tests.fake_notion.server import FakeNotion, Fault, Recorded
from tests.fake_notion.workspace import Workspace

__all__ = ["FakeNotion", "Fault", "Recorded", "Workspace"]
