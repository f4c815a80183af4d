"""Gemini requests and answers: request keys, response classification, and the backends that answer.

A backend turns a GeminiRequest into a generateContent response (google-genai's typed
GenerateContentResponse) or raises BackendError. `replay` answers from a bundled file of example
responses, offline; `vertex` (stages.vertex) calls Vertex AI through google-genai.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from google.genai import types

from .params import GeminiParams, PromptParams
from .records import AnswerEntry, ClipRecord, ResponseStatus, Usage

# finishReasons that mean "the service refused to answer this": retrying the same request will not help.
_BLOCKING_FINISH = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}


class BackendError(Exception):
    """A request failed after the backend's retries; the clip is recorded `failed` and asked again next run.

    `retryable`: a later run may succeed (429, 5xx, timeout, dropped connection), so the stage exits non-zero
    to make DVC run it again; otherwise (a bad request, a clip too large) only a change of input helps.
    """

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class GeminiRequest:
    """Everything that decides one answer, and the clip it is about."""

    clip: ClipRecord
    model: str
    prompt_text: str
    generation: dict[str, Any]
    backend: str
    response_schema: dict[str, Any] | None = None
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", request_key(self))


def generation_config(gemini: GeminiParams) -> dict[str, Any]:
    """The generation settings that are set (nulls dropped), in google-genai's snake_case names."""
    return {k: v for k, v in sorted(gemini.generation.model_dump().items()) if v is not None}


def request_key(request: GeminiRequest) -> str:
    """sha256 of exactly what decides the answer: clip bytes, model, prompt, generation config, schema.

    Concurrency, paths and the parser are left out on purpose, so changing them costs no call. The replay
    backend is part of its keys so that its example answers can never be served as real Gemini answers.
    """
    material: dict[str, Any] = {
        "clip_sha256": request.clip.sha256,
        "model": request.model,
        "prompt": request.prompt_text,
        "generation": request.generation,
        "response_schema": request.response_schema,
    }
    if request.backend == "replay":
        # Replay answers are examples looked up by the clip's ids: keep them apart from real answers, and per clip.
        material["backend"] = "replay"
        material["clip"] = request.clip.key
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def build_request(clip: ClipRecord, gemini: GeminiParams, prompt: PromptParams) -> GeminiRequest:
    return GeminiRequest(clip=clip, model=gemini.model, prompt_text=prompt.text,
                         generation=generation_config(gemini), backend=gemini.backend,
                         response_schema=prompt.response_schema)


@dataclass(frozen=True)
class Classified:
    status: ResponseStatus
    text: str | None
    finish_reason: str | None
    block_reason: str | None
    usage: Usage


def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    return getattr(value, "value", None) or str(value)


def classify_response(response: types.GenerateContentResponse) -> Classified:
    """ok / blocked / truncated / empty (or failed: no candidate and no reason), with the finishReason or
    blockReason that says why."""
    usage_meta = response.usage_metadata
    usage = Usage(prompt_tokens=(usage_meta and usage_meta.prompt_token_count) or 0,
                  output_tokens=(usage_meta and usage_meta.candidates_token_count) or 0,
                  total_tokens=(usage_meta and usage_meta.total_token_count) or 0)
    block = response.prompt_feedback and _enum_name(response.prompt_feedback.block_reason)
    if block:
        return Classified(ResponseStatus.blocked, None, None, block, usage)
    if not response.candidates:  # no answer and no reason: a glitch, not a refusal (asked again next run)
        return Classified(ResponseStatus.failed, None, None, None, usage)
    candidate = response.candidates[0]
    finish = _enum_name(candidate.finish_reason)
    parts = (candidate.content and candidate.content.parts) or []
    text = "".join(p.text for p in parts if p.text and not p.thought) or None
    if finish in _BLOCKING_FINISH:
        return Classified(ResponseStatus.blocked, text, finish, finish, usage)
    if text is None:
        return Classified(ResponseStatus.empty, None, finish, None, usage)
    if finish == "MAX_TOKENS":
        return Classified(ResponseStatus.truncated, text, finish, None, usage)
    return Classified(ResponseStatus.ok, text, finish, None, usage)


def response_entry(request_key: str, model: str, backend: str, response: types.GenerateContentResponse,
                   batch_job: str | None = None) -> AnswerEntry:
    """The entry for an answer received (of any status but failed)."""
    classified = classify_response(response)
    if classified.status is ResponseStatus.failed:
        return failed_entry(request_key, model, backend, "no_candidates: the response holds no candidate and no "
                            "block reason", retryable=True, batch_job=batch_job)
    return AnswerEntry(request_key=request_key, model=model, backend=backend, status=classified.status,
                       text=classified.text, finish_reason=classified.finish_reason,
                       block_reason=classified.block_reason, usage=classified.usage,
                       response=response.model_dump(mode="json", exclude_none=True, by_alias=True), batch_job=batch_job)


def failed_entry(request_key: str, model: str, backend: str, error: str, retryable: bool,
                 batch_job: str | None = None) -> AnswerEntry:
    """The entry for a request that got no answer; it is never stored, so the next run asks again."""
    return AnswerEntry(request_key=request_key, model=model, backend=backend, status=ResponseStatus.failed,
                       error=error, retryable=retryable, batch_job=batch_job)


class Backend(Protocol):
    name: str
    billed: bool  # answers cost money: keep them in the answer store (replay answers are free and are not kept)

    def generate(self, request: GeminiRequest) -> types.GenerateContentResponse:
        """Answer one request, or raise BackendError once retries are exhausted."""
        ...

    def retries_made(self) -> int:
        """Retries made so far by this backend (for progress and the run report)."""
        ...


class ReplayBackend:
    """Answers from a file of example generateContent responses keyed by the clip's Ego4D ids."""

    name = "replay"
    billed = False

    def __init__(self, path: Path):
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
        # Validated here, in one thread: pydantic finishes building the SDK's models on first use,
        # and doing that from several worker threads at once is not safe.
        self._responses = {
            f"{r['video_uid']}-{r['clip_uid']}-{r['annotation_uid']}-{r['language_query_index']}":
                types.GenerateContentResponse.model_validate(r["response"])
            for r in document["responses"]
        }

    def retries_made(self) -> int:
        return 0

    def generate(self, request: GeminiRequest) -> types.GenerateContentResponse:
        response = self._responses.get(request.clip.key)
        if response is None:
            raise BackendError("no_replay_response: the replay file has no answer for this clip")
        return response.model_copy(deep=True)


def make_backend(gemini: GeminiParams, clips_dir: Path) -> Backend:
    types.GenerateContentResponse.model_validate({})  # build the SDK's models before any thread uses them
    if gemini.backend == "replay":
        if not gemini.replay_file:
            raise ValueError("gemini.backend=replay needs gemini.replay_file")
        return ReplayBackend(Path(gemini.replay_file))
    from .vertex import VertexBackend  # imported lazily: the replay path needs no Google credentials

    return VertexBackend(gemini, clips_dir)
