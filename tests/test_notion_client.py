"""The Notion client wrapper against the fake server: pacing, retries, clear errors."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ingest.notion.client import NotionClient, TokenBucket
from ingest.notion.errors import (
    NotionAccessDenied,
    NotionApiError,
    NotionAuthError,
    NotionRateLimited,
    NotionUnavailable,
)
from tests.fake_notion import FakeNotion, Fault, Workspace
from tests.fake_notion import builders as b

PAGE = "393abc1e-edcd-80f3-813b-e205934558c6"


@pytest.fixture
def fake() -> Iterator[FakeNotion]:
    ws = Workspace()
    ws.add_page("Home", [b.paragraph(f"p{i}") for i in range(5)], id=PAGE)
    with FakeNotion(ws, max_page_size=2) as server:
        yield server


def client_for(fake: FakeNotion, **kwargs: Any) -> NotionClient:
    options: dict[str, Any] = {
        "requests_per_second": 0,
        "backoff_seconds": 0.01,
        "max_backoff_seconds": 0.02,
    }
    return NotionClient(fake.workspace.token, base_url=fake.url, **(options | kwargs))


def rate_limited(*, retry_after: str, times: int | None) -> Fault:
    return Fault(
        status=429,
        code="rate_limited",
        message="You have been rate limited. Please try again in a few minutes.",
        retry_after=retry_after,
        times=times,
    )


def test_requests_carry_the_clients_default_api_version(fake: FakeNotion) -> None:
    client = client_for(fake)

    client.me()

    assert client.notion_version == "2025-09-03"
    assert fake.requests[-1].version == "2025-09-03"


def test_rate_limit_storm_is_ridden_out_honouring_retry_after(fake: FakeNotion) -> None:
    storm = fake.add_fault(rate_limited(retry_after="0", times=4))
    client = client_for(fake)

    assert client.retrieve_page(PAGE)["id"] == PAGE

    assert storm.fired == 4 and client.stats.retries == 4
    assert client.stats.retry_waits == [0.0] * 4  # Retry-After, not backoff


def test_retry_after_seconds_are_waited_before_the_retry(fake: FakeNotion) -> None:
    fake.add_fault(rate_limited(retry_after="1", times=1))
    client = client_for(fake)

    client.me()

    refused, retried = fake.requests[-2:]
    assert (refused.status, retried.status) == (429, 200)
    assert client.stats.retry_waits == [1.0]
    assert retried.at - refused.at >= 0.95  # lower bound only: waited at least as told


def test_endless_rate_limiting_gives_up_with_a_clear_error(fake: FakeNotion) -> None:
    fake.add_fault(rate_limited(retry_after="0", times=None))
    client = client_for(fake, max_retries=2)

    with pytest.raises(NotionRateLimited, match="429"):
        client.me()
    assert fake.count("users") == 3


def test_server_errors_are_retried_with_capped_jittered_backoff(fake: FakeNotion) -> None:
    fake.add_fault(Fault(status=500, times=2, kind="blocks.children"))
    fake.add_fault(
        Fault(
            status=503,
            code="service_unavailable",
            message="Notion is down",
            times=1,
            kind="blocks.children",
        )
    )
    client = client_for(fake)

    blocks = list(client.list_children(PAGE))

    assert len(blocks) == 5
    assert client.stats.retries == 3
    assert all(0.005 <= w <= 0.02 for w in client.stats.retry_waits)


def test_post_requests_and_non_json_gateway_errors_are_retried(fake: FakeNotion) -> None:
    fake.add_fault(Fault(status=502, html=True, kind="search", times=1))
    fake.add_fault(
        Fault(status=529, code="service_overload", message="overloaded", kind="search", times=1)
    )
    fake.add_fault(
        Fault(status=504, code="gateway_timeout", message="timeout", kind="search", times=1)
    )
    client = client_for(fake)

    assert [r["id"] for r in client.search()] == [PAGE]
    assert client.stats.retries == 3


def test_timeouts_are_retried(fake: FakeNotion) -> None:
    fake.add_fault(Fault(delay=1.0, times=1, kind="pages"))
    client = client_for(fake, timeout_seconds=0.2)

    assert client.retrieve_page(PAGE)["id"] == PAGE
    assert client.stats.retries == 1


def test_unreachable_server_is_reported_after_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = NotionClient(
        "ntn_x",
        base_url=f"http://127.0.0.1:{port}",
        requests_per_second=0,
        max_retries=2,
        backoff_seconds=0.01,
    )

    with pytest.raises(NotionUnavailable, match="Could not reach Notion"):
        client.me()
    assert client.stats.retries == 2


def test_bad_token_says_so_and_how_to_fix_it(fake: FakeNotion) -> None:
    client = NotionClient("ntn_wrong", base_url=fake.url, requests_per_second=0)

    with pytest.raises(NotionAuthError) as caught:
        client.me()

    assert "rejected the integration token" in caught.value.message
    assert caught.value.hint is not None and "kb notion connect" in caught.value.hint
    assert fake.count("users") == 1  # a 401 is final: not retried


def test_unshared_page_names_the_page_and_the_share_menu(fake: FakeNotion) -> None:
    fake.workspace.unshare(PAGE)
    client = client_for(fake)

    with pytest.raises(NotionAccessDenied) as caught:
        client.retrieve_page(PAGE)

    assert caught.value.object_id == PAGE and caught.value.status == 404
    assert f"no access to page {PAGE}" in str(caught.value)
    assert "Share menu" in str(caught.value)


def test_restricted_resource_is_access_denied(fake: FakeNotion) -> None:
    fake.add_fault(
        Fault(
            status=403,
            code="restricted_resource",
            message="Insufficient permissions for this endpoint.",
            kind="pages",
        )
    )

    with pytest.raises(NotionAccessDenied, match="HTTP 403"):
        client_for(fake).retrieve_page(PAGE)


def test_validation_errors_are_final(fake: FakeNotion) -> None:
    with pytest.raises(NotionApiError, match="validation_error"):
        client_for(fake).retrieve_page("not-a-uuid")
    assert fake.count("pages") == 1


def test_token_bucket_spaces_requests_after_the_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(3.0, burst=1.0, clock=lambda: now[0])

    waits = [bucket.reserve() for _ in range(3)]
    now[0] = 10.0
    after_idle = bucket.reserve()

    assert waits == pytest.approx([0.0, 1 / 3, 2 / 3])
    assert after_idle == 0.0


def test_paced_client_never_exceeds_its_rate(fake: FakeNotion) -> None:
    client = client_for(fake, requests_per_second=20, burst=1)

    for _ in range(6):
        client.me()

    times = [r.at for r in fake.requests]
    assert times[-1] - times[0] >= 4 / 20  # burst of 1 at 20/s, then one per 50 ms
    assert client.stats.paced_seconds > 0


def test_token_never_appears_in_logs_or_repr(
    fake: FakeNotion, caplog: pytest.LogCaptureFixture
) -> None:
    fake.add_fault(rate_limited(retry_after="0", times=1))
    fake.workspace.unshare(PAGE)
    client = client_for(fake)

    with caplog.at_level(logging.DEBUG), pytest.raises(NotionAccessDenied):
        client.retrieve_page(PAGE)

    assert fake.workspace.token not in repr(client)
    assert all(fake.workspace.token not in r.getMessage() for r in caplog.records)


def test_fake_server_checks_headers_and_routes_like_notion(fake: FakeNotion) -> None:
    auth = {"Authorization": f"Bearer {fake.workspace.token}"}
    no_version = httpx.get(f"{fake.url}/v1/users/me", headers=auth)
    unknown = httpx.get(f"{fake.url}/v1/nothing", headers=auth | {"Notion-Version": "2025-09-03"})
    big_page = httpx.get(
        f"{fake.url}/v1/blocks/{PAGE}/children?page_size=101",
        headers=auth | {"Notion-Version": "2025-09-03"},
    )

    assert (no_version.status_code, no_version.json()["code"]) == (400, "missing_version")
    assert (unknown.status_code, unknown.json()["code"]) == (400, "invalid_request_url")
    assert (big_page.status_code, big_page.json()["code"]) == (400, "validation_error")
    assert all("request_id" in r.json() for r in (no_version, unknown, big_page))
