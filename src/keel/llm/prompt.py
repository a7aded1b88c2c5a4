"""Prompts as versioned template files in the package (`prompts/<role>/<version>.txt`) and the requests built from them.

A prompt's version (`strategist/v1`) is part of every request and of its cassette key: changing a prompt means a new
file and a new version, so a recorded answer is never replayed against a prompt it was not given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from keel.domain.errors import InputError
from keel.llm.provider import LLMRequest, Message
from keel.llm.schemas import SCHEMAS

#: The schema each role answers in.
ROLE_SCHEMAS = {"outlook": "OutlookOutput", "strategist": "StrategistOutput", "critic": "CriticOutput"}
_VERSION = re.compile(r"^v[0-9]+$")


@dataclass(frozen=True, slots=True)
class Prompt:
    role: str
    version: str  # "v1"
    text: str

    @property
    def prompt_version(self) -> str:
        return f"{self.role}/{self.version}"


def load_prompt(role: str, version: str = "v1") -> Prompt:
    if role not in ROLE_SCHEMAS or not _VERSION.match(version):
        raise InputError(
            f"no prompt {role}/{version}: roles are {', '.join(ROLE_SCHEMAS)}, versions look like v1",
        )
    file = resources.files("keel.llm").joinpath("prompts", role, f"{version}.txt")
    if not file.is_file():
        raise InputError(
            f"no prompt {role}/{version} in the package (keel/llm/prompts/{role}/{version}.txt)",
            hint="use a version that ships, or add the file",
        )
    return Prompt(role, version, file.read_text(encoding="utf-8"))


def build_request(
    prompt: Prompt, model: str, context: Mapping[str, Any], *, max_tokens: int | None = None
) -> LLMRequest:
    """The system message is the prompt; the user message is the context as canonical JSON (sorted keys), so the
    same context always makes the same request and the same cassette key."""
    schema_name = ROLE_SCHEMAS[prompt.role]
    user = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return LLMRequest(
        model=model,
        messages=(Message("system", prompt.text), Message("user", user)),
        schema_name=schema_name,
        schema_version=SCHEMAS[schema_name].model_fields["schema_version"].default,
        prompt_version=prompt.prompt_version,
        max_tokens=max_tokens,
    )
