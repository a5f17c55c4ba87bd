"""The Chainlit app: wires Chainlit's callbacks to the handlers (run with `kb serve`).

Nothing heavy happens at import: the database, embeddings and chain are built on
first use by `chat_app.services.get_services()` from the environment `kb serve`
passes down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import chainlit as cl
from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.oauth_providers import get_configured_oauth_providers
from chainlit.server import app as server_app
from chainlit.types import ThreadDict
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_app import auth
from chat_app.datalayer import build_data_layer, build_storage_engine
from chat_app.handlers import notion
from chat_app.handlers.ask import ANSWER_KIND, answer_question
from chat_app.handlers.citations import strip_footer
from chat_app.handlers.commands import parse_command, send_chat_setup, starters
from chat_app.handlers.history import name_thread_after_question, restore_memory
from chat_app.handlers.session import (
    chat_options,
    current_user_id,
    get_history,
    remember_exchange,
)
from chat_app.handlers.sources import forget_source, show_sources
from chat_app.handlers.upload import ask_and_ingest, ingest_uploads, uploads_from_elements
from chat_app.services import Services, close_services, get_services
from chat_app.storage import install_file_route
from db.errors import KbError

log = logging.getLogger("kb.app")
# Alembic announces its plugins and migration context at INFO on every schema check,
# and Chainlit shows INFO: keep only Alembic's warnings in the server log.
logging.getLogger("alembic").setLevel(logging.WARNING)
_data_layer: SQLAlchemyDataLayer | None = None
_storage_engine: AsyncEngine | None = None


async def _services() -> Services:
    return await asyncio.to_thread(get_services)


def storage_engine() -> AsyncEngine:
    global _storage_engine
    if _storage_engine is None:
        _storage_engine = build_storage_engine(get_services().database_url)
    return _storage_engine


@cl.data_layer
def data_layer() -> SQLAlchemyDataLayer:
    global _data_layer
    if _data_layer is None:
        _data_layer = build_data_layer(get_services().database_url, storage_engine=storage_engine())
    return _data_layer


install_file_route(server_app, storage_engine)


@cl.on_app_startup
async def on_app_startup() -> None:
    # Connect now and load the embedding model in the background, so the first
    # login and the first question do not wait for them.
    services = await _services()
    asyncio.get_running_loop().run_in_executor(None, lambda: services.embeddings)


@cl.on_app_shutdown
async def on_app_shutdown() -> None:
    if _data_layer is not None:
        await _data_layer.engine.dispose()
    if _storage_engine is not None:
        await _storage_engine.dispose()
    # Releases the embedded server's handle: the last process to let go stops it.
    await asyncio.to_thread(close_services)


cl.password_auth_callback(auth.password_auth_callback)
if get_configured_oauth_providers():  # e.g. OAUTH_GITHUB_CLIENT_ID/_SECRET are set
    cl.oauth_callback(auth.oauth_callback)


@cl.set_starters
async def set_starters(
    user: cl.User | None = None, language: str | None = None
) -> list[cl.Starter]:
    return starters()


@cl.on_chat_start
async def on_chat_start() -> None:
    services = await _services()
    await send_chat_setup(services.settings)


@cl.on_chat_resume
async def on_chat_resume(thread: ThreadDict) -> None:
    services = await _services()
    restore_memory(thread)
    await send_chat_setup(services.settings, cl.user_session.get("chat_settings"))


@cl.on_settings_update
async def on_settings_update(values: dict[str, Any]) -> None:
    cl.user_session.set("chat_settings", values)


async def _guarded(handler: Callable[..., Awaitable[Any]], *args: Any) -> None:
    """Whatever fails, the chat carries on with a message saying what happened."""
    try:
        await handler(*args)
    except KbError as exc:
        await cl.Message(content=f"**{exc.message}**" + (f" {exc.hint}" if exc.hint else "")).send()
    except Exception:
        log.exception("handling a chat event failed")
        await cl.Message(
            content="**Something went wrong.** The details are in the server log; please try again."
        ).send()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    await _guarded(_handle_message, message)


async def _handle_message(message: cl.Message) -> None:
    services = await _services()
    user_id = current_user_id()
    uploads = uploads_from_elements(message.elements or [])
    if uploads:
        await ingest_uploads(uploads, services=services, user_id=user_id)
    parsed = parse_command(message.command, message.content)
    if parsed.name == "upload":
        await ask_and_ingest(services=services, user_id=user_id)
    elif parsed.name == "sources":
        await show_sources(services=services, user_id=user_id)
    elif parsed.name == "forget":
        await forget_source(parsed.argument, services=services, user_id=user_id)
    elif parsed.name == "notion":
        await notion.notion_menu(services=services, user_id=user_id)
    elif parsed.argument and (not uploads or parsed.argument.rstrip().endswith("?")):
        # With files attached, only a question gets an answer ("here is my report" does not).
        options = chat_options(services.settings)
        reply = await answer_question(
            parsed.argument,
            services=services,
            user_id=user_id,
            history=get_history(),
            mode=options.mode,
            k=options.k,
        )
        if (reply.metadata or {}).get("kind") == ANSWER_KIND:
            remember_exchange(parsed.argument, strip_footer(reply.content))
            await name_thread_after_question(services.engine, user_id, parsed.argument)


async def _run_action(
    handler: Callable[..., Awaitable[Any]],
) -> None:
    """Chainlit runs action callbacks without the "working" state; show it, and always
    end it (an AskUserMessage inside leaves the task started)."""
    emitter = cl.context.emitter
    await emitter.task_start()

    async def run() -> None:
        await handler(services=await _services(), user_id=current_user_id())

    try:
        await _guarded(run)
    finally:
        await emitter.task_end()


@cl.action_callback(notion.ACTION_CONNECT)
async def on_notion_connect(action: cl.Action) -> None:
    await _run_action(notion.connect)


@cl.action_callback(notion.ACTION_SYNC)
async def on_notion_sync(action: cl.Action) -> None:
    await _run_action(notion.resync)


@cl.action_callback(notion.ACTION_STATUS)
async def on_notion_status(action: cl.Action) -> None:
    await _run_action(notion.show_status)


@cl.action_callback(notion.ACTION_DISCONNECT)
async def on_notion_disconnect(action: cl.Action) -> None:
    await _run_action(notion.disconnect)
