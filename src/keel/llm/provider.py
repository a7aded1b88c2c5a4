"""The one interface a model provider offers, `complete(request) -> response`, and its OpenAI-compatible implementation.

A provider makes exactly one attempt: retries, backoff and the circuit breaker live in `calls`, so every attempt is
seen and recorded by Keel. A failure is a `ProviderError` with a kind that says whether retrying can help.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import httpx
import openai


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """What is asked. The same request (model, messages, schema, prompt version) has the same `key`, which is how a
    cassette finds its answer."""

    model: str
    messages: tuple[Message, ...]
    schema_name: str  # e.g. "StrategistOutput"
    schema_version: int
    prompt_version: str  # e.g. "strategist/v1"
    max_tokens: int | None = None
    temperature: float = 0.0

    @property
    def key(self) -> str:
        canonical = json.dumps(
            {
                "model": self.model,
                "messages": [[m.role, m.content] for m in self.messages],
                "schema": [self.schema_name, self.schema_version],
                "prompt_version": self.prompt_version,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LLMResponse:
    content: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None


class ErrorKind(StrEnum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    RATE_LIMITED = "rate_limited"  # 429
    SERVER = "server"  # 5xx
    CLIENT = "client"  # other 4xx: retrying the same request cannot help
    INVALID_RESPONSE = "invalid_response"  # an answer that is not a chat completion

    @property
    def retryable(self) -> bool:
        return self in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.RATE_LIMITED, ErrorKind.SERVER)


class ProviderError(Exception):
    """One failed attempt. The message names the provider and the HTTP status, never a credential."""

    def __init__(
        self, kind: ErrorKind, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after_s = retry_after_s


class Provider(Protocol):
    """Answers one request with one attempt, or raises `ProviderError`."""

    provider_id: str  # who answers (the base URL): one circuit breaker each

    def complete(self, request: LLMRequest, *, timeout_s: float) -> LLMResponse: ...


#: Without a key, local OpenAI-compatible servers still need some bearer token; the SDK must never look one up.
_NO_KEY = "no-key"


class OpenAICompatibleProvider:
    """Chat completions at `base_url` through the `openai` SDK, with the SDK's own retries off (Keel retries)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, http_client: httpx.Client | None = None) -> None:
        self.provider_id = base_url.strip().rstrip("/").lower()
        # base_url and api_key are always given, so the SDK reads neither OPENAI_BASE_URL nor OPENAI_API_KEY.
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or _NO_KEY, max_retries=0, http_client=http_client
        )

    def close(self) -> None:
        self._client.close()

    def complete(self, request: LLMRequest, *, timeout_s: float) -> LLMResponse:
        where = f"{self.provider_id} (model {request.model})"
        try:
            reply = self._client.chat.completions.create(
                model=request.model,
                messages=[{"role": m.role, "content": m.content} for m in request.messages],  # type: ignore[misc]
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                timeout=httpx.Timeout(timeout_s),
            )
        except openai.APITimeoutError:
            raise ProviderError(ErrorKind.TIMEOUT, f"{where}: no answer within {timeout_s:g} s") from None
        except openai.APIConnectionError as exc:
            raise ProviderError(
                ErrorKind.CONNECTION, f"{where}: connection failed ({type(exc.__cause__ or exc).__name__})"
            ) from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            kind = ErrorKind.RATE_LIMITED if status == 429 else ErrorKind.SERVER if status >= 500 else ErrorKind.CLIENT
            raise ProviderError(
                kind,
                f"{where}: HTTP {status}",
                status=status,
                retry_after_s=retry_after_seconds(exc.response.headers.get("retry-after")),
            ) from None
        except (openai.OpenAIError, ValueError) as exc:  # a body that is not JSON, or not a completion
            raise ProviderError(
                ErrorKind.INVALID_RESPONSE, f"{where}: the answer is not a chat completion ({type(exc).__name__})"
            ) from None
        choices = getattr(reply, "choices", None)
        if not choices or choices[0].message is None:
            raise ProviderError(ErrorKind.INVALID_RESPONSE, f"{where}: the answer holds no choice")
        usage = reply.usage
        return LLMResponse(
            content=choices[0].message.content or "",
            model=reply.model or request.model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choices[0].finish_reason,
        )


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` in seconds (the caller bounds it). The HTTP-date form would need the wall clock, which Keel only
    reads through its injected clock: it counts as absent, and the usual backoff applies."""
    try:
        seconds = float((value or "").strip())
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
