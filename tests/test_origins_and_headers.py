"""One origin: a page on another port of the same host (same-site, so the browser
sends the session cookie) gets no CORS grant, no data and no socket; responses carry
the security headers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from chat_app.security.headers import HeaderPolicy, inline_script_hashes, with_secure_flag
from chat_app.security.middleware import SecurityPolicy
from tests.kb_server import THREADS_PAGE, KbServer, running_server, serve_env, socket_connects
from tests.pg_tcp import free_port
from tests.web_fixtures import PASSWORD, add_account, web, web_db, web_engine

__all__ = ["web", "web_db", "web_engine"]  # fixtures


@pytest.fixture
def signed_in(web: KbServer, web_engine: Engine) -> str:
    user = add_account(web_engine, "origin")
    token = web.login(user.identifier, PASSWORD).cookies.get("access_token")
    assert token
    return token


def test_another_port_of_the_same_host_gets_no_cors_grant(web: KbServer, signed_in: str) -> None:
    evil = f"http://127.0.0.1:{free_port()}"
    client = web.client(cookies={"access_token": signed_in})
    preflight = client.options(
        "/project/threads",
        headers={"Origin": evil, "Access-Control-Request-Method": "POST"},
    )
    listing = client.post("/project/threads", json=THREADS_PAGE, headers={"Origin": evil})
    user = client.get("/user", headers={"Origin": evil})
    for response in (preflight, listing, user):
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-credentials" not in response.headers
        assert response.status_code == 403
    assert "threads" not in listing.text and "identifier" not in user.text


def test_the_apps_own_origin_is_served(web: KbServer, signed_in: str) -> None:
    client = web.client(cookies={"access_token": signed_in})
    for origin in (web.base, web.base.replace("127.0.0.1", "localhost")):
        host = origin.removeprefix("http://")
        response = client.get("/user", headers={"Origin": origin, "Host": host})
        assert response.status_code == 200


def test_the_socket_refuses_other_origins(web: KbServer, signed_in: str) -> None:
    evil = f"http://127.0.0.1:{free_port()}"
    assert asyncio.run(socket_connects(web, token=signed_in))
    assert not asyncio.run(socket_connects(web, token=signed_in, origin=evil))
    assert not asyncio.run(socket_connects(web, token=signed_in, origin=evil, transport="polling"))
    assert not asyncio.run(socket_connects(web, token=signed_in, origin="null"))


def test_pages_and_api_answers_carry_security_headers(web: KbServer, signed_in: str) -> None:
    page = web.client().get("/")
    api = web.client(cookies={"access_token": signed_in}).get("/user")
    for response in (page, api):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "SAMEORIGIN"
        assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert "strict-transport-security" not in response.headers  # plain http here
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in csp and "object-src 'none'" in csp
    assert "'unsafe-eval'" not in csp
    # The page's own inline scripts are allowed by hash, no other inline script is.
    script_src = page.headers["content-security-policy"].split("script-src ", 1)[1].split(";")[0]
    assert "'unsafe-inline'" not in script_src
    for digest in inline_script_hashes(page.text):
        assert digest in script_src


def test_https_public_url_makes_cookies_secure_and_sends_hsts() -> None:
    policy = HeaderPolicy(https=True, _hashes=["'sha256-x'"])
    html = [(b"content-type", b"text/html; charset=utf-8")]
    names = [name for name, _ in policy.headers_for(html, "kb.example.com")]
    assert b"strict-transport-security" in names and b"content-security-policy" in names
    pdf = [(b"content-type", b"application/pdf")]
    assert b"content-security-policy" not in [n for n, _ in policy.headers_for(pdf, None)]
    assert with_secure_flag(b"access_token=abc; HttpOnly; Path=/") == (
        b"access_token=abc; HttpOnly; Path=/; Secure"
    )
    assert with_secure_flag(b"a=b; Secure") == b"a=b; Secure"
    # A response that sets its own policy (attachments: sandbox) keeps it.
    kept = policy.headers_for([*html, (b"content-security-policy", b"sandbox")], None)
    assert b"content-security-policy" not in [name for name, _ in kept]


def test_the_public_url_is_an_allowed_origin_behind_a_proxy() -> None:
    policy = SecurityPolicy(gate=None, public_origin="https://kb.example.com")  # type: ignore[arg-type]
    assert policy.origin_allowed("https://kb.example.com", "127.0.0.1:8000")
    assert policy.origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not policy.origin_allowed("https://evil.example", "127.0.0.1:8000")
    assert not policy.origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8000")
    assert not policy.origin_allowed("null", "127.0.0.1:8000")


def test_behind_tls_cookies_are_secure_and_the_public_origin_is_accepted(
    web_db: str, tmp_path: Path, web_engine: Engine
) -> None:
    user = add_account(web_engine, "tls")
    env = serve_env(web_db, tmp_path / "data", KB_PUBLIC_URL="https://kb.example.com/")
    with running_server(tmp_path, env) as server:
        client = server.client()
        login = client.post(
            "/login",
            data={"username": user.identifier, "password": PASSWORD},
            headers={"Origin": "https://kb.example.com"},
        )
        assert login.status_code == 200
        assert "; secure" in login.headers["set-cookie"].lower()
        assert login.headers["strict-transport-security"] == "max-age=31536000"
        # A browser sends a Secure cookie over https only; the test speaks http.
        token = login.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
        client = server.client(cookies={"access_token": token})
        page = client.get("/user", headers={"Origin": "https://kb.example.com"})
        assert page.status_code == 200
        assert client.get("/user", headers={"Origin": "https://evil.example"}).status_code == 403
