"""The Chainlit app: wires Chainlit's callbacks to the handlers (run with `kb serve`).

Nothing heavy happens at import. The app's one `Services` (the composition root) is
opened from the environment `kb serve` passes down when Chainlit starts the app, and
every callback hands it to the handler it calls; shutdown closes it. The security
middleware and kb's guarded routes (`chat_app.security`) are installed in front of
Chainlit's at import and build their state on the first request.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from typing import Any, Protocol

import chainlit as cl
from chainlit.auth.cookie import get_token_from_cookies
from chainlit.config import config as chainlit_config
from chainlit.data import get_data_layer
from chainlit.oauth_providers import get_configured_oauth_providers
from chainlit.server import app as server_app
from chainlit.types import ThreadDict
from chainlit.utils import utc_now
from fastapi import Request, Response

from chat_app import auth
from chat_app.datalayer import KbDataLayer, build_data_layer
from chat_app.handlers import notion
from chat_app.handlers.ask import ANSWER_KIND, answer_question
from chat_app.handlers.citations import strip_footer
from chat_app.handlers.commands import parse_command, send_chat_setup, starters
from chat_app.handlers.history import name_thread_after_question, restore_memory
from chat_app.handlers.job_messages import announce_end
from chat_app.handlers.jobs import reattach_jobs, show_jobs
from chat_app.handlers.session import (
    chat_options,
    current_user_id,
    get_history,
    remember_exchange,
)
from chat_app.handlers.sources import forget_source, show_sources
from chat_app.handlers.spaces import find_space, spaces_command, user_spaces
from chat_app.handlers.upload import ask_and_ingest, ingest_uploads, uploads_from_elements
from chat_app.health import add_route_first, install_health_routes
from chat_app.metrics import install_metrics_route
from chat_app.security.composition import AppSecurity, build_security
from chat_app.security.middleware import SecurityMiddleware, client_address
from chat_app.security.outage import SERVICE_UNAVAILABLE, is_outage, monitor
from chat_app.security.routes import install_routes
from chat_app.services import Services, open_services
from chat_app.storage import install_file_route, install_source_route
from chat_app.upload_route import install_upload_route
from db.errors import KbError, NotFound
from db.spaces import SpaceAccess

log = logging.getLogger("kb.app")
# Alembic announces its plugins and migration context at INFO on every schema check,
# and Chainlit shows INFO: keep only Alembic's warnings in the server log.
logging.getLogger("alembic").setLevel(logging.WARNING)
# Steps that began before this moment and never ended belong to a dead process.
_STARTED = utc_now()
_SESSION_ENDED = "**Your session has ended.** Reload the page to log in again."


class _App:
    """The one `Services` of this process and Chainlit's data layer on it, opened on
    first need (Chainlit may ask for the data layer before the start-up hook runs)."""

    def __init__(self) -> None:
        self._services: Services | None = None
        self._data_layer: KbDataLayer | None = None
        self._security: AppSecurity | None = None
        self.closed = False

    @property
    def services(self) -> Services:
        if self._services is None:
            if self.closed:
                # Reopening would start the embedded server again after it was released.
                raise RuntimeError("kb is shutting down")
            self._services = open_services()
        return self._services

    @property
    def opened(self) -> Services | None:
        """The services once open (health and metrics never open them)."""
        return self._services

    @property
    def security(self) -> AppSecurity:
        if self._security is None:
            self._security = build_security(self.services)
        return self._security

    @property
    def data_layer(self) -> KbDataLayer:
        if self._data_layer is None:
            services = self.services
            self._data_layer = build_data_layer(
                services.database_url,
                storage_engine=services.storage_engine,
                router=services.read_router,
            )
        return self._data_layer

    async def close(self) -> None:
        if self._data_layer is not None:
            await self._data_layer.engine.dispose()
            await self._data_layer.close_replicas()
        if self._services is not None:
            await self._services.aclose()
            # Releases the embedded server's handle: the last process to let go stops it.
            await asyncio.to_thread(self._services.close)
        # The data layer object stays: Chainlit closes it again after this hook.
        self._services = self._security = None
        self.closed = True


_app = _App()


async def _services() -> Services:
    return await asyncio.to_thread(lambda: _app.services)


async def _security() -> AppSecurity:
    return await asyncio.to_thread(lambda: _app.security)


@cl.data_layer
def data_layer() -> KbDataLayer:
    return _app.data_layer


install_file_route(server_app, lambda: _app.services.storage_engine)
install_source_route(server_app, lambda: _app.services.engine)
install_upload_route(server_app)
install_health_routes(server_app, lambda: _app.opened)
install_metrics_route(server_app, lambda: _app.opened, add_route_first)
install_routes(server_app, data_layer=lambda: _app.data_layer, login=lambda: _app.security.login)
# Outermost: origins, sessions and outages are settled before Chainlit sees a request.
server_app.add_middleware(SecurityMiddleware, policy=lambda: _app.security.policy)


@cl.on_app_startup
async def on_app_startup() -> None:
    # Connect now and load the embedding model in the background, so the first
    # login and the first question do not wait for them.
    services = await _services()
    services.metrics.watch(services)
    await _security()
    # Chainlit asks for its data layer again at shutdown, after on_app_shutdown has
    # released everything: make it exist now (a late first call would reopen the
    # database and restart the embedded server).
    await asyncio.to_thread(get_data_layer)
    # Chainlit signs tokens and sets cookies for this long; the session row expires too.
    chainlit_config.project.user_session_timeout = int(services.settings.session_hours * 3600)
    asyncio.get_running_loop().run_in_executor(None, lambda: services.embeddings)
    if services.read_router is not None:
        await services.read_router.refresh()  # logs any replica it must skip


@cl.on_app_shutdown
async def on_app_shutdown() -> None:
    await _app.close()


@cl.password_auth_callback
async def password_auth_callback(username: str, password: str) -> cl.User | None:
    # Logins arrive at kb's own /login route (chat_app.security.routes), which can
    # answer 429 and 503; Chainlit needs this callback to offer the password form.
    login = (await _security()).login
    try:
        return await asyncio.to_thread(login, username, password, address=client_address.get())
    except auth.LoginRefused:
        return None


async def oauth_callback(
    provider_id: str,
    token: str,
    raw_user_data: dict[str, Any],
    default_user: cl.User,
    id_token: str | None = None,
) -> cl.User | None:
    services = await _services()
    user = await auth.oauth_login(
        services.engine,
        provider_id,
        default_user,
        sessions=(await _security()).sessions,
        address=client_address.get(),
    )
    if user is None:
        services.metrics.login_failed("oauth")
    return user


if get_configured_oauth_providers():  # e.g. OAUTH_GITHUB_CLIENT_ID/_SECRET are set
    cl.oauth_callback(oauth_callback)


@cl.on_logout
async def on_logout(request: Request, response: Response) -> dict[str, bool]:
    token = get_token_from_cookies(request.cookies)
    if token:
        try:
            await asyncio.to_thread((await _security()).sessions.end, token)
        except Exception as exc:
            if not is_outage(exc):
                raise
            # The browser forgets its cookie anyway; the row ends at its expiry.
            monitor.failed(exc, during="a logout")
    return {"success": True}


async def _session_still_open() -> bool:
    """The websocket's login is still valid (checked per message: a socket opened
    before a logout or `kb users disable` must not keep working)."""
    token = cl.context.session.token
    if not token:
        return False
    return await (await _security()).sessions.verify(token) is not None


@cl.set_starters
async def set_starters(
    user: cl.User | None = None, language: str | None = None
) -> list[cl.Starter]:
    return starters()


async def _my_spaces(services: Services) -> list[SpaceAccess]:
    return await asyncio.to_thread(user_spaces, services, current_user_id())


@cl.on_chat_start
async def on_chat_start() -> None:
    services = await _services()
    await send_chat_setup(services.settings, await _my_spaces(services))


@cl.on_chat_resume
async def on_chat_resume(thread: ThreadDict) -> None:
    await _guarded(_resume(thread))


async def _resume(thread: ThreadDict) -> None:
    services = await _services()
    # Chainlit shows `thread` after this returns: uploads cut off by a crash say so.
    await _app.data_layer.mark_interrupted_steps(
        thread, user_id=current_user_id(), started_before=_STARTED
    )
    restore_memory(thread)
    await send_chat_setup(
        services.settings, await _my_spaces(services), cl.user_session.get("chat_settings")
    )
    # Uploads and syncs started in this chat and still running (or ended while nobody
    # watched): their steps follow the jobs again in this session.
    user_id = current_user_id()
    await reattach_jobs(
        services, thread["id"], on_end=lambda row: announce_end(services, user_id, row)
    )


@cl.on_settings_update
async def on_settings_update(values: dict[str, Any]) -> None:
    cl.user_session.set("chat_settings", values)


async def _guarded(work: Awaitable[object]) -> None:
    """Whatever fails, the chat carries on with a message saying what happened."""
    try:
        await work
    except Exception as exc:
        if is_outage(exc):
            monitor.failed(exc, during="a chat message")
            await cl.Message(content=f"**{SERVICE_UNAVAILABLE}**").send()
            return
        if isinstance(exc, KbError):
            hint = f" {exc.hint}" if exc.hint else ""
            await cl.Message(content=f"**{exc.message}**{hint}").send()
            return
        log.exception("handling a chat event failed")
        await cl.Message(
            content="**Something went wrong.** The details are in the server log; please try again."
        ).send()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    await _guarded(_handle_message(message))


async def _handle_message(message: cl.Message) -> None:
    if not await _session_still_open():
        await cl.Message(content=_SESSION_ENDED).send()
        return
    services = await _services()
    user_id = current_user_id()
    # The user's spaces now (a membership may have changed since the last message).
    spaces = await _my_spaces(services)
    options = chat_options(services.settings, spaces)
    parsed = parse_command(message.command, message.content)
    uploads = uploads_from_elements(message.elements or [])
    # Files go to the space named by `/upload SPACE`, else the chat's upload space.
    target = options.upload_space
    if parsed.name == "upload" and parsed.argument:
        target = find_space(spaces, parsed.argument)
    if uploads:
        await ingest_uploads(uploads, services=services, user_id=user_id, space=target)
    if parsed.name == "upload":
        if not uploads:
            await ask_and_ingest(services=services, user_id=user_id, space=target)
    elif parsed.name == "sources":
        await show_sources(services=services, user_id=user_id)
    elif parsed.name == "forget":
        await forget_source(parsed.argument, services=services, user_id=user_id)
    elif parsed.name == "jobs":
        await show_jobs(services=services, user_id=user_id, spaces=spaces)
    elif parsed.name == "notion":
        space = find_space(spaces, parsed.argument) if parsed.argument else _personal(spaces)
        await notion.notion_menu(services=services, user_id=user_id, space=space)
    elif parsed.name == "spaces":
        await spaces_command(parsed.argument, services=services, user_id=user_id)
    elif parsed.argument and (not uploads or parsed.argument.rstrip().endswith("?")):
        # With files attached, only a question gets an answer ("here is my report" does not).
        reply = await answer_question(
            parsed.argument,
            services=services,
            user_id=user_id,
            spaces=options.spaces,
            history=get_history(),
            mode=options.mode,
            k=options.k,
        )
        if (reply.metadata or {}).get("kind") == ANSWER_KIND:
            remember_exchange(parsed.argument, strip_footer(reply.content))
            await name_thread_after_question(services.engine, user_id, parsed.argument)


def _personal(spaces: list[SpaceAccess]) -> SpaceAccess:
    return next(s for s in spaces if s.kind == "personal")


class _ActionHandler(Protocol):
    def __call__(
        self, *, services: Services, user_id: uuid.UUID, space: SpaceAccess
    ) -> Awaitable[object]: ...


async def _run_action(handler: _ActionHandler, action: cl.Action) -> None:
    """Chainlit runs action callbacks without the "working" state; show it, and always
    end it (an AskUserMessage inside leaves the task started). The action names its
    space; the user's membership is checked again now."""
    emitter = cl.context.emitter
    await emitter.task_start()

    async def run() -> None:
        if not await _session_still_open():
            await cl.Message(content=_SESSION_ENDED).send()
            return
        services = await _services()
        wanted = str(action.payload.get("space_id") or "")
        spaces = await _my_spaces(services)
        space = next((s for s in spaces if str(s.id) == wanted), None)
        if space is None:
            raise NotFound("That space is not one of yours any more.", hint="See `/spaces`.")
        await handler(services=services, user_id=current_user_id(), space=space)

    try:
        await _guarded(run())
    finally:
        await emitter.task_end()


@cl.action_callback(notion.ACTION_CONNECT)
async def on_notion_connect(action: cl.Action) -> None:
    await _run_action(notion.connect, action)


@cl.action_callback(notion.ACTION_SYNC)
async def on_notion_sync(action: cl.Action) -> None:
    await _run_action(notion.resync, action)


@cl.action_callback(notion.ACTION_STATUS)
async def on_notion_status(action: cl.Action) -> None:
    await _run_action(notion.show_status, action)


@cl.action_callback(notion.ACTION_DISCONNECT)
async def on_notion_disconnect(action: cl.Action) -> None:
    await _run_action(notion.disconnect, action)
