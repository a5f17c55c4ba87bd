"""Build a chat model from a "provider:model" setting (LangChain's `init_chat_model` style).

- `openai:<model>`: OpenAI, or any OpenAI-compatible server (vLLM, llama.cpp,
  LM Studio, ...) with `base_url`; local servers need no key, so a placeholder is sent.
- `ollama:<model>`: a local Ollama (`base_url` defaults to http://localhost:11434).
- `huggingface:<model>`: langchain-huggingface; with `base_url` a text-generation
  inference endpoint, else a local transformers pipeline (model name or folder).
- anything else (`anthropic:...`, `mistralai:...`) goes to `init_chat_model` as is.

No spec means no model: the chain then answers in extractive mode.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from db.errors import KbError

__all__ = ["LlmConfigError", "LlmUnavailable", "build_chat_model", "describe_model"]

# Sent when an OpenAI-compatible local server needs no key (the client insists on one).
LOCAL_API_KEY = "not-needed"

# provider -> (python module, pip extra of kb or plain package to install)
_PACKAGES = {
    "openai": ("langchain_openai", "'kb[openai]'"),
    "ollama": ("langchain_ollama", "'kb[ollama]'"),
    "huggingface": ("langchain_huggingface", "langchain-huggingface"),
}


class LlmConfigError(KbError):
    """The configured language model cannot be built."""


class LlmUnavailable(KbError):
    """The language model failed while answering (server down, refused, timed out)."""

    @classmethod
    def wrap(cls, model: str | None, error: BaseException) -> LlmUnavailable:
        return cls(
            f"The language model {model or ''} did not answer: "
            f"{type(error).__name__}: {error}".replace("  ", " "),
            hint="Check that the model server is running and KB_LLM / KB_LLM_BASE_URL / "
            "KB_LLM_API_KEY are right, or unset KB_LLM for extractive answers.",
        )


def _split(spec: str) -> tuple[str | None, str]:
    provider, sep, model = spec.partition(":")
    if not sep:
        return None, spec
    if not model:
        raise LlmConfigError(
            f"The LLM setting {spec!r} names no model.",
            hint='Write it as "provider:model", e.g. "openai:gpt-4o-mini" or "ollama:llama3.1".',
        )
    return provider.strip().lower(), model.strip()


def _missing(provider: str, exc: ImportError) -> LlmConfigError:
    module, extra = _PACKAGES.get(provider, (f"langchain_{provider}", f"langchain-{provider}"))
    return LlmConfigError(
        f"The LLM provider {provider!r} needs the package {module!r}, which is not installed "
        f"({exc}).",
        hint=f"Install it: pip install {extra}",
    )


def _openai(model: str, base_url: str | None, api_key: str | None, temperature: float) -> Any:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise _missing("openai", exc) from None
    key = api_key or (LOCAL_API_KEY if base_url else None)
    kwargs: dict[str, Any] = {
        "model": model,
        "temperature": temperature,
        "streaming": True,
        "stream_usage": True,
    }
    if base_url:
        kwargs["base_url"] = base_url
    if key:
        kwargs["api_key"] = key
    try:
        return ChatOpenAI(**kwargs)
    except Exception as exc:  # openai.OpenAIError when no key is found anywhere
        raise LlmConfigError(
            f"Cannot set up the OpenAI model {model!r}: {type(exc).__name__}.",
            hint="Set KB_LLM_API_KEY, or KB_LLM_BASE_URL for a local OpenAI-compatible server.",
        ) from None


def _ollama(model: str, base_url: str | None, temperature: float) -> Any:
    try:
        from langchain_ollama import ChatOllama
    except ImportError as exc:
        raise _missing("ollama", exc) from None
    kwargs: dict[str, Any] = {"model": model, "temperature": temperature}
    if base_url:
        kwargs["base_url"] = base_url
    return ChatOllama(**kwargs)


def _huggingface(model: str, base_url: str | None, api_key: str | None, temperature: float) -> Any:
    try:
        from langchain_huggingface import ChatHuggingFace, HuggingFaceEndpoint, HuggingFacePipeline
    except ImportError as exc:
        raise _missing("huggingface", exc) from None
    try:
        llm: Any
        if base_url:
            llm = HuggingFaceEndpoint(  # type: ignore[call-arg]
                endpoint_url=base_url,
                huggingfacehub_api_token=api_key,
                temperature=max(temperature, 0.01),  # the endpoint rejects 0
                streaming=True,
            )
        else:
            llm = HuggingFacePipeline.from_model_id(
                model_id=model,
                task="text-generation",
                pipeline_kwargs={"max_new_tokens": 512, "return_full_text": False},
            )
        return ChatHuggingFace(llm=llm, model_id=model)
    except Exception as exc:
        raise LlmConfigError(
            f"Cannot load the Hugging Face model {model!r}: {exc}",
            hint="Give a local model folder, or KB_LLM_BASE_URL of a text-generation endpoint.",
        ) from None


def build_chat_model(
    spec: str | None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    temperature: float = 0.1,
) -> BaseChatModel | None:
    """The chat model named by `spec` ("provider:model"), streaming on; None if unset."""
    if spec is None or not spec.strip():
        return None
    provider, model = _split(spec.strip())
    chat: Any
    if provider == "openai":
        chat = _openai(model, base_url, api_key, temperature)
    elif provider == "ollama":
        chat = _ollama(model, base_url, temperature)
    elif provider in ("huggingface", "hf"):
        chat = _huggingface(model, base_url, api_key, temperature)
    else:
        from langchain.chat_models import init_chat_model

        kwargs: dict[str, Any] = {"temperature": temperature, "streaming": True}
        if base_url:
            kwargs["base_url"] = base_url
        if api_key:
            kwargs["api_key"] = api_key
        try:
            chat = init_chat_model(model, model_provider=provider, **kwargs)
        except ImportError as exc:
            raise _missing(provider or "unknown", exc) from None
        except ValueError as exc:
            raise LlmConfigError(
                f"Cannot build the chat model {spec!r}: {exc}",
                hint='Use "openai:...", "ollama:...", "huggingface:..." or another '
                "init_chat_model provider.",
            ) from None
    return chat


def describe_model(llm: BaseChatModel | None) -> str | None:
    """A short name for logs: the model's name, or None in extractive mode."""
    if llm is None:
        return None
    for attribute in ("model_name", "model", "model_id"):
        value = getattr(llm, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(llm).__name__
