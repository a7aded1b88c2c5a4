"""Fail-closed parsing of a model's answer: one JSON object, out of code fences or prose, validated into its schema.

Nothing is repaired. Truncated or ambiguous JSON, a wrong schema, a missing field, evidence the model was not given:
no output and LLM_INVALID_OUTPUT. An answer carrying execution parameters anywhere (an order type, a price, a client
id, …) is dropped whole with LLM_SCOPE_VIOLATION: a model that tries to execute is not trusted for the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from keel.domain.reasons import ReasonCode
from keel.llm.schemas import ModelOutput

T = TypeVar("T", bound=ModelOutput)

#: Longer answers are refused unread: no schema here needs a fraction of this.
MAX_CONTENT_CHARS = 64_000

#: Keys that only an order has. Compared without case, `_` or `-`, so `clientOrderId` is `client_order_id`.
EXECUTION_KEYS = frozenset(
    k.replace("_", "")
    for k in (
        "order_type",
        "type",
        "price",
        "limit_price",
        "stop_price",
        "entry_price",
        "trigger_price",
        "client_order_id",
        "client_id",
        "order_id",
        "intent_id",
        "time_in_force",
        "tif",
        "leverage",
        "margin",
        "notional",
        "notional_cap",
        "reduce_only",
        "post_only",
        "venue",
        "exchange",
        "broker",
        "account",
        "route",
        "execute",
        "approve",
        "approved",
        "approval",
    )
)

_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


@dataclass(frozen=True, slots=True)
class Parsed(Generic[T]):
    """A validated output, or none and why (`reason`, `detail` for the operator)."""

    output: T | None
    reason: ReasonCode | None = None
    detail: str = ""


class _Refused(Exception):
    def __init__(self, reason: ReasonCode, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_output(content: str, schema: type[T], *, evidence_ids: frozenset[str] | None = None) -> Parsed[T]:
    """`content` as `schema`, or a refusal. With `evidence_ids`, every cited id must be one of them."""
    try:
        obj = extract_json_object(content)
        _check_scope(obj)
        output = _validate(obj, schema)
        if evidence_ids is not None:
            _check_evidence(output, evidence_ids)
    except _Refused as refused:
        return Parsed(None, refused.reason, refused.detail)
    return Parsed(output)


def extract_json_object(content: str) -> dict[str, Any]:
    """The one JSON object in `content`: inside a single code fence if there is one, else starting at the first `{`.
    Anything after it may be prose but not another object: two objects are ambiguous."""
    if len(content) > MAX_CONTENT_CHARS:
        raise _Refused(ReasonCode.LLM_INVALID_OUTPUT, f"answer is {len(content)} characters, over {MAX_CONTENT_CHARS}")
    blocks = [b for b in _FENCE.findall(content) if "{" in b]
    if len(blocks) > 1:
        raise _Refused(ReasonCode.LLM_INVALID_OUTPUT, f"{len(blocks)} code blocks hold JSON: ambiguous")
    text = blocks[0] if blocks else content
    start = text.find("{")
    if start < 0:
        raise _Refused(ReasonCode.LLM_INVALID_OUTPUT, "no JSON object in the answer")
    try:
        obj, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise _Refused(ReasonCode.LLM_INVALID_OUTPUT, f"not valid JSON (truncated?): {exc.msg} at {exc.pos}") from None
    except ValueError as exc:  # NaN, Infinity
        raise _Refused(ReasonCode.LLM_INVALID_OUTPUT, f"not valid JSON: {exc}") from None
    if "{" in text[end:]:
        raise _Refused(ReasonCode.LLM_INVALID_OUTPUT, "more than one JSON object in the answer: ambiguous")
    if not isinstance(obj, dict):  # pragma: no cover - raw_decode at a "{" only yields objects
        raise _Refused(ReasonCode.LLM_INVALID_OUTPUT, "the JSON is not an object")
    return obj


def _keys(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k), f"{path}.{k}" if path else str(k)
            yield from _keys(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _keys(v, f"{path}[{i}]")


def _check_scope(obj: dict[str, Any]) -> None:
    found = [where for key, where in _keys(obj) if key.lower().replace("_", "").replace("-", "") in EXECUTION_KEYS]
    if found:
        raise _Refused(
            ReasonCode.LLM_SCOPE_VIOLATION,
            f"the answer carries execution parameters ({', '.join(found[:5])}): models advise, they never set orders",
        )


def _validate(obj: dict[str, Any], schema: type[T]) -> T:
    try:
        # Strict JSON validation: "10" is not a number, a string is not a list. Enums still come as their strings.
        return schema.model_validate_json(json.dumps(obj), strict=True)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
        raise _Refused(ReasonCode.LLM_INVALID_OUTPUT, f"not a valid {schema.__name__}: {problems}") from None


def _cited(output: ModelOutput) -> Iterator[str]:
    yield from getattr(output, "evidence_ids", ())
    for p in getattr(output, "proposals", ()):
        yield from p.evidence_ids


def _check_evidence(output: ModelOutput, known: frozenset[str]) -> None:
    unknown = sorted(set(_cited(output)) - known)
    if unknown:
        raise _Refused(ReasonCode.LLM_INVALID_OUTPUT, f"cites evidence it was not given: {', '.join(unknown[:5])}")
