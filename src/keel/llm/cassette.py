"""Cassettes: record a provider's answers to a JSON-lines file, replay them later with no network.

The first line is a header naming the file as a Keel cassette and the provider it recorded; each further line is one
request (its key: a hash of model, messages, schema and prompt version) and its answer. `record` creates a new file
and refuses one that already exists, so it never overwrites a file it did not write; each addition rewrites the file
atomically (temporary file, fsync, rename) after checking the file on disk is still exactly what it last wrote.
`replay` serves answers by key and fails closed on a miss, naming the key and the file. Only answers are recorded:
a call that failed while recording has no entry, so its replay misses (fail closed, never a different outcome).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Any

from keel.domain.errors import InputError
from keel.llm.provider import LLMRequest, LLMResponse, Provider

FORMAT = 1
_HEADER_KEY = "keel_cassette"


class CassetteMode(StrEnum):
    RECORD = "record"
    REPLAY = "replay"


class CassetteError(InputError):
    """A cassette file cannot be used as asked (exists, foreign, corrupt, changed under the recorder)."""


class CassetteMiss(CassetteError):
    """Replay was asked for a request the cassette does not hold."""


class CassetteProvider:
    """A `Provider` in front of another (record) or of nothing at all (replay)."""

    def __init__(self, path: Path | str, mode: CassetteMode, inner: Provider | None = None) -> None:
        self.path = Path(path)
        self.mode = CassetteMode(mode)
        self._inner = inner
        self._entries: dict[str, dict[str, Any]] = {}
        if self.mode is CassetteMode.RECORD:
            if inner is None:
                raise ValueError("a recording cassette needs the provider it records")
            self.provider_id = inner.provider_id
            self._written = self._create()
        else:
            self.provider_id = self._load()

    # -- Provider ---------------------------------------------------------------------------------------------

    def complete(self, request: LLMRequest, *, timeout_s: float) -> LLMResponse:
        entry = self._entries.get(request.key)
        if entry is not None:  # record mode serves a repeated request as recorded, so replay matches it
            return LLMResponse(**entry["response"])
        if self.mode is CassetteMode.REPLAY:
            raise CassetteMiss(
                f"{self.path}: no recorded answer for request {request.key} (model {request.model}, prompt "
                f"{request.prompt_version}, schema {request.schema_name} v{request.schema_version})",
                hint="the prompt, the model or the context changed since recording: record a new cassette",
            )
        assert self._inner is not None
        response = self._inner.complete(request, timeout_s=timeout_s)
        entry = {
            "key": request.key,
            "model": request.model,
            "prompt_version": request.prompt_version,
            "schema": [request.schema_name, request.schema_version],
            "messages": [[m.role, m.content] for m in request.messages],
            "response": asdict(response),
        }
        self._entries[request.key] = entry
        self._write(self._written + _line(entry))
        return response

    # -- the file ---------------------------------------------------------------------------------------------

    def _create(self) -> bytes:
        header = _line({_HEADER_KEY: FORMAT, "provider": self.provider_id})
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise CassetteError(
                f"{self.path}: already exists; a recording never overwrites a file",
                hint="replay it, delete it yourself, or record into a new file",
            ) from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(header)
            fh.flush()
            os.fsync(fh.fileno())
        return header

    def _write(self, data: bytes) -> None:
        try:
            on_disk = self.path.read_bytes()
        except FileNotFoundError:
            on_disk = None
        if on_disk != self._written:
            raise CassetteError(
                f"{self.path}: changed since this recording last wrote it; refusing to overwrite it",
                hint="record into a new file",
            )
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._written = data

    def _load(self) -> str:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise CassetteError(f"{self.path}: no such cassette", hint="record it first (mode record)") from None
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if not isinstance(header, dict) or header.get(_HEADER_KEY) != FORMAT:
            raise CassetteError(f"{self.path}: not a Keel cassette (format {FORMAT}): its first line is no header")
        for n, text in enumerate(lines[1:], start=2):
            try:
                entry = json.loads(text)
                LLMResponse(**entry["response"])
                self._entries[str(entry["key"])] = entry
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CassetteError(
                    f"{self.path}, line {n}: not a cassette entry ({type(exc).__name__}: {exc})",
                    hint="record the cassette again",
                ) from None
        return str(header.get("provider", "cassette"))


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
