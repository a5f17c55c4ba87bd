"""Login timing and the cost of checking sessions, against a running `kb serve`.

    python bench/login_timing.py --url http://127.0.0.1:8000 --login admin --password ...

Prints, measured in the same run (the CPU is shared, so ratios are the figures):
- median time of a login with an unknown name vs with a known name and a wrong
  password, and their ratio (1.0 = no login enumeration by timing; before the
  dummy hash it was 0.035: 4.6 ms vs 130 ms);
- median latency of GET /user with a session (one extra indexed lookup in
  login_sessions per request) vs GET /health (no session, no database).

It makes `--attempts` failed logins for `--login` and as many unknown names: keep
it under KB_LOGIN_MAX_FAILURES (20) or the login is locked for the window.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

import httpx


def _median_ms(action: Callable[[], object], runs: int) -> float:
    durations = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        durations.append((time.perf_counter() - start) * 1000)
    return statistics.median(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--login", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--attempts", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()

    client = httpx.Client(base_url=args.url, timeout=120)

    def attempt(login: str) -> None:
        status = client.post("/login", data={"username": login, "password": "wrong-" + "x" * 8})
        assert status.status_code == 401, status.text

    # Interleaved, so a change of machine load hits both series alike.
    unknown, wrong = [], []
    for _ in range(args.attempts):
        unknown.append(_median_ms(lambda: attempt(f"nobody-{uuid.uuid4().hex[:8]}"), 1))
        wrong.append(_median_ms(lambda: attempt(args.login), 1))
    u, w = statistics.median(unknown), statistics.median(wrong)
    print(f"login, unknown name:    median {u:8.1f} ms  ({args.attempts} attempts)")
    print(f"login, wrong password:  median {w:8.1f} ms")
    print(f"ratio unknown / wrong:  {u / w:.2f}")

    session = httpx.Client(base_url=args.url, timeout=120)
    ok = session.post("/login", data={"username": args.login, "password": args.password})
    assert ok.status_code == 200, ok.text
    user = _median_ms(lambda: session.get("/user").raise_for_status(), args.requests)
    health = _median_ms(lambda: session.get("/health").raise_for_status(), args.requests)
    print(f"GET /user (session checked): median {user:6.1f} ms  ({args.requests} requests)")
    print(f"GET /health (no session):    median {health:6.1f} ms")


if __name__ == "__main__":
    main()
