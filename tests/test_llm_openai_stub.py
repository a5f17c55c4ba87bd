"""The OpenAI-compatible path over real HTTP: a local chat-completions stub that streams
server-sent events, the real langchain-openai client, the real chain."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from sqlalchemy.engine import Engine

from db.scoped import user_scope
from db.usage import list_usage
from retrieval.chain import Answer, AnswerChain, AnswerConfig
from retrieval.llm import LOCAL_API_KEY, LlmConfigError, LlmUnavailable, build_chat_model
from retrieval.retriever import Retriever
from tests.fakes import HashEmbeddings
from tests.retrieval_fixtures import add_passages

ANSWER_PIECES = ["The Zephyr", " kettle", " has a two", " year warranty", " [1]", "."]
REWRITTEN = "What is the warranty of the Zephyr kettle?"


class StubServer(ThreadingHTTPServer):
    requests: list[dict[str, Any]]
    headers_seen: list[dict[str, str]]


class ChatCompletions(BaseHTTPRequestHandler):
    server: StubServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        self.server.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        last = body["messages"][-1]["content"]
        pieces = [REWRITTEN] if last.startswith("Rewrite this follow-up") else ANSWER_PIECES
        if not body.get("stream"):
            self._json(_completion("".join(pieces), body["model"]))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            self._event(_chunk(body["model"], delta, None))
        self._event(_chunk(body["model"], {}, "stop"))
        if body.get("stream_options", {}).get("include_usage"):
            usage = {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57}
            self._event({**_chunk(body["model"], {}, None), "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()

    def _json(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _chunk(model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _completion(text: str, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer(("127.0.0.1", 0), ChatCompletions)
    server.requests, server.headers_seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def user_id(
    engine: Engine, make_user: Callable[..., Any], fake_embeddings: HashEmbeddings
) -> uuid.UUID:
    user = make_user("alice")
    add_passages(
        engine,
        fake_embeddings,
        user.id,
        [
            ("Kettle manual", "The Zephyr kettle has a two year warranty."),
            ("Toaster manual", "The Aurora toaster has seven heat settings."),
        ],
    )
    return uuid.UUID(str(user.id))


async def test_openai_compatible_server_streams_through_the_chain(
    stub: StubServer, engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    base_url = f"http://127.0.0.1:{stub.server_address[1]}/v1"
    llm = build_chat_model("openai:stub", base_url=base_url, temperature=0.0)
    chain = AnswerChain(retriever=retriever, engine=engine, llm=llm, config=AnswerConfig(k=2))
    pieces: list[str] = []
    final: Answer | None = None
    async for item in chain.astream("Zephyr kettle warranty?", user_id=user_id):
        if isinstance(item, Answer):
            final = item
        else:
            pieces.append(item)
    assert pieces == ANSWER_PIECES
    assert final is not None
    assert final.text == "The Zephyr kettle has a two year warranty [1]."
    assert [(s.number, s.title) for s in final.sources] == [(1, "Kettle manual")]
    assert final.model == "stub"
    (request,) = stub.requests
    assert request["model"] == "stub" and request["stream"] is True
    assert "[1] Kettle manual" in request["messages"][0]["content"]
    assert stub.headers_seen[0]["authorization"] == f"Bearer {LOCAL_API_KEY}"
    with user_scope(engine, user_id) as connection:
        (row,) = list_usage(connection=connection, user_id=user_id)
    assert (row.model, row.tokens_used, row.sources_count) == ("stub", 57, 1)


async def test_follow_up_rewrite_goes_through_the_same_server(
    stub: StubServer, engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    base_url = f"http://127.0.0.1:{stub.server_address[1]}/v1"
    llm = build_chat_model("openai:stub", base_url=base_url, api_key="sk-local")
    chain = AnswerChain(retriever=retriever, engine=engine, llm=llm, config=AnswerConfig(k=2))
    history = [HumanMessage("Tell me about the Zephyr kettle"), AIMessage("It boils water [1].")]
    answer = await chain.ainvoke("and its warranty?", user_id=user_id, history=history)
    assert answer.standalone_question == REWRITTEN
    rewrite, answering = stub.requests
    assert "Tell me about the Zephyr kettle" in json.dumps(rewrite["messages"])
    assert answering["messages"][-1]["content"] == REWRITTEN
    assert stub.headers_seen[0]["authorization"] == "Bearer sk-local"


def test_no_spec_means_no_model() -> None:
    assert build_chat_model(None) is None
    assert build_chat_model("  ") is None


def test_spec_without_model_name_is_refused() -> None:
    with pytest.raises(LlmConfigError, match="names no model"):
        build_chat_model("openai:")


def test_provider_without_its_package_names_what_to_install() -> None:
    with pytest.raises(LlmConfigError) as error:
        build_chat_model("anthropic:claude-sonnet")
    assert "langchain_anthropic" in error.value.message
    assert error.value.hint is not None and "pip install" in error.value.hint


def test_ollama_model_takes_its_base_url() -> None:
    llm = build_chat_model("ollama:llama3.1", base_url="http://127.0.0.1:11434")
    assert llm is not None and getattr(llm, "model", None) == "llama3.1"
    assert getattr(llm, "base_url", None) == "http://127.0.0.1:11434"


async def test_unreachable_server_fails_with_an_actionable_error(
    engine: Engine, retriever: Retriever, user_id: uuid.UUID
) -> None:
    server = StubServer(("127.0.0.1", 0), ChatCompletions)
    port = server.server_address[1]
    server.server_close()  # nothing listens there any more
    llm = build_chat_model("openai:stub", base_url=f"http://127.0.0.1:{port}/v1")
    chain = AnswerChain(retriever=retriever, engine=engine, llm=llm, config=AnswerConfig(k=2))
    with pytest.raises(LlmUnavailable) as error:
        await chain.ainvoke("Zephyr kettle warranty?", user_id=user_id)
    assert "did not answer" in error.value.message and "KB_LLM_BASE_URL" in str(error.value.hint)
