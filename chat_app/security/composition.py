"""Compose the web app's security pieces from its one `Services`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from chat_app.auth import PasswordLogin
from chat_app.security.headers import HeaderPolicy
from chat_app.security.middleware import SecurityPolicy
from chat_app.security.sessions import SessionGate
from chat_app.security.throttle import LoginThrottle, ThrottleConfig, build_storage
from chat_app.services import Services

__all__ = ["AppSecurity", "build_security"]


@dataclass(frozen=True)
class AppSecurity:
    sessions: SessionGate
    login: PasswordLogin
    policy: SecurityPolicy


def build_security(services: Services) -> AppSecurity:
    settings = services.settings
    sessions = SessionGate(
        engine=services.engine,
        check_engine=services.storage_engine,
        secret=settings.persistent_secret("chainlit_auth", settings.chainlit_auth_secret),
        lifetime=timedelta(hours=settings.session_hours),
    )
    throttle = LoginThrottle(
        build_storage(settings.login_throttle_storage, services.engine),
        ThrottleConfig(
            max_per_login=settings.login_max_failures,
            max_per_address=settings.login_max_failures_per_address,
            window_seconds=int(settings.login_failure_window_minutes * 60),
        ),
    )
    return AppSecurity(
        sessions=sessions,
        login=PasswordLogin(
            engine=services.engine,
            throttle=throttle,
            sessions=sessions,
            on_refused=services.metrics.login_failed,
        ),
        policy=SecurityPolicy(
            gate=sessions,
            headers=HeaderPolicy(enabled=settings.security_headers, https=settings.https),
            public_origin=settings.public_origin,
        ),
    )
