"""Answering a question: stream the chain's tokens, then attach the cited sources."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

import chainlit as cl
from langchain_core.messages import BaseMessage

from chat_app.handlers.citations import file_key, file_links, source_elements, sources_footer
from chat_app.services import Services
from db.errors import KbError
from retrieval.chain import Answer
from retrieval.passages import SearchMode

__all__ = ["ANSWER_KIND", "answer_question"]

log = logging.getLogger(__name__)

# Marks answer messages in the steps' metadata, so a resumed chat rebuilds its memory
# from answers only (not from upload reports or command output). The chain labels
# extractive answers (no LLM) itself.
ANSWER_KIND = "answer"


async def answer_question(
    question: str,
    *,
    services: Services,
    user_id: uuid.UUID,
    spaces: Sequence[uuid.UUID] | None = None,
    history: Sequence[BaseMessage] = (),
    mode: SearchMode | None = None,
    k: int | None = None,
) -> cl.Message:
    """Stream the answer into one message and attach its sources; returns the message."""
    msg = cl.Message(content="", metadata={"kind": ANSWER_KIND})
    answer: Answer | None = None
    asked_mode = mode or services.settings.retrieval_mode
    try:
        chain = await asyncio.to_thread(services.answer_chain)  # loads the model once
        stream = chain.astream(
            question, user_id=user_id, spaces=spaces, history=history, mode=mode, k=k
        )
        async for part in stream:
            if isinstance(part, Answer):
                answer = part
            else:
                await msg.stream_token(part)
    except KbError as exc:
        services.metrics.answer_failed(mode=asked_mode)
        msg.content = f"**I could not answer:** {exc}"
        msg.metadata = {"kind": "error"}
        await msg.send()
        return msg
    except Exception:
        services.metrics.answer_failed(mode=asked_mode)
        log.exception("answering failed")
        msg.content = (
            "**Something went wrong while answering.** The details are in the server log; "
            "please try again."
        )
        msg.metadata = {"kind": "error"}
        await msg.send()
        return msg

    if answer is not None:
        services.metrics.observe_answer(answer, mode=asked_mode)
        if not msg.content.strip():
            msg.content = answer.text
        if answer.sources:
            keys = [file_key(s) for s in answer.sources if s.source_type == "file" and not s.url]
            links = await asyncio.to_thread(file_links, services.engine, user_id=user_id, keys=keys)
            msg.elements = source_elements(  # type: ignore[assignment]
                answer.sources, links, answer_text=answer.text
            )
            msg.content += sources_footer(answer.sources)
    await msg.send()  # ends the stream (if any), persists the message, sends the elements
    return msg
