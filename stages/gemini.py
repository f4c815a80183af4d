"""Gemini requests and answers: request keys, response classification, and the backends that answer.

A backend turns a GeminiRequest into a generateContent response (google-genai's typed
GenerateContentResponse) or raises BackendError. `replay` answers from a bundled file of example
responses, offline; `vertex` (stages.vertex) calls Vertex AI through google-genai.
"""

from __future__ import annotations

import enum
import hashlib
import json
import typing
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from google.genai import types
from pydantic import BaseModel, ValidationError

from .params import GeminiParams, ParamsError, PromptParams
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


# GenerateContentConfig fields that are not generation settings here: where they are set instead.
_SET_ELSEWHERE = {
    "response_mime_type": "set by prompt.response_schema (structured answers), not here",
    "response_schema": "set by prompt.response_schema (structured answers), not here",
    "response_json_schema": "set by prompt.response_schema (structured answers), not here",
    "http_options": "runtime settings are environment variables (EVUD_REQUEST_TIMEOUT_S, EVUD_RETRY_*), not params",
    "should_return_http_response": "not a generation setting",
}


def drop_nulls(value: Any) -> Any:
    """A config without its null settings (and without sections left empty): null means the model's default."""
    if isinstance(value, dict):
        kept = {k: drop_nulls(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v != {}}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (unwrapping Optional/Union/list), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_of, typing.get_args(annotation)) if m is not None), None)


def _settings_model(path: tuple[Any, ...]) -> type[BaseModel]:
    """The SDK model that holds the last key of this path (GenerateContentConfig, ThinkingConfig, ...)."""
    model: type[BaseModel] = types.GenerateContentConfig
    for key in path[:-1]:
        field = model.model_fields.get(str(key))
        inner = _model_of(field.annotation) if field is not None else None
        if inner is None:
            break
        model = inner
    return model


def _describe_settings_error(problem: dict[str, Any]) -> str:
    path = problem["loc"]
    key = ".".join(["gemini.generation", *map(str, path)])
    if problem["type"] == "extra_forbidden":
        model = _settings_model(path)
        known = ", ".join(sorted(f for f in model.model_fields if f not in _SET_ELSEWHERE))
        return f"{key}: not a setting of google-genai's {model.__name__}; known settings: {known}"
    return f"{key}={problem['input']!r}: {problem['msg']}"


def _check_enums(value: Any, path: str) -> None:
    """The SDK accepts an unknown enum value with only a warning; refuse it, listing the values it knows."""
    if isinstance(value, enum.Enum):
        members = type(value).__members__
        if value.name not in members:
            allowed = ", ".join(name for name in members if not name.endswith("UNSPECIFIED"))
            raise ParamsError(f"{path}={value.value!r}: not one of {allowed}")
    elif isinstance(value, BaseModel):
        for name in value.model_fields_set:
            _check_enums(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for item in value:
            _check_enums(item, path)


@lru_cache(maxsize=16)
def _checked_generation(settings_json: str) -> str:
    settings = drop_nulls(json.loads(settings_json))
    for key in settings:
        if key in _SET_ELSEWHERE:
            raise ParamsError(f"gemini.generation.{key}: {_SET_ELSEWHERE[key]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown enum values: refused below with the key named
        try:
            config = types.GenerateContentConfig.model_validate(settings)
        except ValidationError as err:
            raise ParamsError("; ".join(_describe_settings_error(p) for p in err.errors())) from None
    _check_enums(config, "gemini.generation")
    return json.dumps(config.model_dump(mode="json", exclude_unset=True, exclude_none=True), sort_keys=True)


def generation_config(gemini: GeminiParams) -> dict[str, Any]:
    """gemini.generation, checked by google-genai's own GenerateContentConfig: nulls dropped, in the SDK's
    snake_case names and canonical values (`low` -> `LOW`). What is sent, and what the request key holds."""
    return json.loads(_checked_generation(json.dumps(gemini.generation, sort_keys=True)))


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


def usage_of(meta: types.GenerateContentResponseUsageMetadata | None) -> Usage:
    """Tokens as Vertex counted them: prompt (and its audio part), answer, thinking, total."""
    if meta is None:
        return Usage()
    audio = sum(d.token_count or 0 for d in meta.prompt_tokens_details or [] if _enum_name(d.modality) == "AUDIO")
    return Usage(prompt_tokens=meta.prompt_token_count or 0, prompt_audio_tokens=audio,
                 output_tokens=meta.candidates_token_count or 0, thoughts_tokens=meta.thoughts_token_count or 0,
                 total_tokens=meta.total_token_count or 0)


def classify_response(response: types.GenerateContentResponse) -> Classified:
    """ok / blocked / truncated / empty (or failed: no candidate and no reason), with the finishReason or
    blockReason that says why."""
    usage = usage_of(response.usage_metadata)
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
    if finish == "MAX_TOKENS":  # thinking may have eaten the whole budget: no text at all
        return Classified(ResponseStatus.truncated, text, finish, None, usage)
    if text is None:
        return Classified(ResponseStatus.empty, None, finish, None, usage)
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

    def check_ready(self) -> None:
        """Raise a UserError saying what to do if the backend cannot answer (credentials, access, model)."""
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

    def check_ready(self) -> None:
        pass  # a file on disk: nothing to check

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
