"""A Gemini request and its key: everything that decides one answer, and nothing that does not.

The key is sha256 of the clip's bytes, the model, the prompt, the generation settings as sent and the
response schema; paths, concurrency and the parser are left out on purpose, so changing them costs no call.
`gemini.generation` is any field of google-genai's GenerateContentConfig, checked by the SDK's own model.
"""

from __future__ import annotations

import enum
import hashlib
import json
import typing
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from google.genai import types
from pydantic import BaseModel, ValidationError

from evud.core.params import GeminiParams, ParamsError, PromptParams
from evud.core.records import ClipRecord
from evud.gemini.frames import FRAME_SAMPLING


@dataclass(frozen=True)
class GeminiRequest:
    """Everything that decides one answer, and the clip it is about."""

    clip: ClipRecord
    model: str
    prompt_text: str
    generation: dict[str, Any]
    backend: str
    response_schema: dict[str, Any] | None = None
    video_fps: float | None = None  # frames a second Gemini looks at (None: the model's default, 1)
    video: bool = True  # False: a text-only request about the clip (verify's blind and judge checks): no video part
    purpose: str = "qa"  # what the request is for (qa, blind, judge, ground): how the replay backend finds its answer
    # openai backend: how the clip is sent (video_url, or frames with their count and sampling); None for Vertex
    video_input: dict[str, Any] | None = None
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


# What Vertex accepts for the numeric settings (GenerationConfig reference and the content-generation parameters
# page): the SDK checks only types, and Vertex answers a value outside these with a 400 for every clip.
# name -> (lowest, highest, highest included, how the range reads)
_VERTEX_RANGES: dict[str, tuple[float, float | None, bool, str]] = {
    "temperature": (0.0, 2.0, True, "0.0 to 2.0"),
    "top_p": (0.0, 1.0, True, "0.0 to 1.0"),
    "top_k": (1, None, True, "1 or more"),
    "candidate_count": (1, 8, True, "1 to 8"),
    "max_output_tokens": (1, 65_536, True, "1 to 65,536"),  # the Gemini 3 models' maximum output (model guides)
    "presence_penalty": (-2.0, 2.0, False, "-2.0 up to (not including) 2.0"),
    "frequency_penalty": (-2.0, 2.0, False, "-2.0 up to (not including) 2.0"),
    "logprobs": (1, 20, True, "1 to 20"),
    "seed": (-(2**31), 2**31 - 1, True, "a 32-bit integer"),
}


def _check_ranges(settings: dict[str, Any]) -> None:
    for name, (low, high, high_included, reads) in _VERTEX_RANGES.items():
        value = settings.get(name)
        if value is None:
            continue
        above = high is not None and (value > high if high_included else value >= high)
        if value < low or above:
            raise ParamsError(f"gemini.generation.{name}={value}: Vertex accepts {reads}")


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
    checked = config.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    _check_ranges(checked)
    return json.dumps(checked, sort_keys=True)


def generation_config(gemini: GeminiParams) -> dict[str, Any]:
    """gemini.generation, checked by google-genai's own GenerateContentConfig: nulls dropped, in the SDK's
    snake_case names and canonical values (`low` -> `LOW`). What is sent, and what the request key holds."""
    checked = json.loads(_checked_generation(json.dumps(gemini.generation, sort_keys=True)))
    return chat_generation(checked, gemini.extra_body) if gemini.backend == "openai" else checked


# The settings of gemini.generation a chat-completions server takes (sent under its own names by the openai backend).
# The rest (thinking_config, media_resolution, ...) are Gemini's: not sent to such a server, so not in its keys.
CHAT_SETTINGS = frozenset({"temperature", "top_p", "top_k", "max_output_tokens", "seed", "presence_penalty",
                           "frequency_penalty", "stop_sequences"})
# Body fields the openai backend sets itself: gemini.extra_body may not replace them.
_CHAT_REQUEST_FIELDS = frozenset({"model", "messages", "response_format", "stream", "n", "max_tokens",
                                  "max_completion_tokens", "temperature", "top_p", "seed", "stop", "top_k"})


def chat_generation(checked: dict[str, Any], extra_body: dict[str, Any]) -> dict[str, Any]:
    """The settings an OpenAI-compatible server is sent: the chat-completions ones of gemini.generation, and
    gemini.extra_body (the server's own sampling params) under `extra_body`."""
    taken = set(extra_body) & _CHAT_REQUEST_FIELDS
    if taken:
        raise ParamsError(f"gemini.extra_body.{sorted(taken)[0]}: set by the backend or by gemini.generation "
                          "(max_output_tokens, temperature, top_p, top_k, seed, stop_sequences), not here")
    settings = {k: v for k, v in checked.items() if k in CHAT_SETTINGS}
    if extra_body:
        settings["extra_body"] = json.loads(json.dumps(drop_nulls(extra_body), sort_keys=True))
    return settings


def video_input(gemini: GeminiParams) -> dict[str, Any] | None:
    """How the openai backend sends a clip (None for the others): what the request key holds of it."""
    if gemini.backend != "openai":
        return None
    if gemini.video_fps is not None:
        raise ParamsError(f"gemini.video_fps={gemini.video_fps:g} is Gemini's videoMetadata.fps: an OpenAI-compatible "
                          "server samples a video_url itself (vLLM: --media-io-kwargs), and frames mode sends "
                          "gemini.video_frames images; set gemini.video_fps=null")
    if gemini.video_mode == "frames":
        return {"mode": "frames", "frames": gemini.video_frames, **FRAME_SAMPLING}
    return {"mode": "video_url"}


VERTEX_MAX_VIDEO_FPS = 24.0  # videoMetadata.fps: "(0.0, 24.0]" (Vertex VideoMetadata reference)
_EDGE_S = 1e-6


def check_video_fps(fps: float | None) -> float | None:
    if fps is not None and not 0 < fps <= VERTEX_MAX_VIDEO_FPS:
        raise ParamsError(f"gemini.video_fps={fps:g}: Vertex accepts more than 0 and at most {VERTEX_MAX_VIDEO_FPS:g} "
                          "frames a second")
    return fps


def video_metadata(clip: ClipRecord, fps: float | None) -> dict[str, Any] | None:
    """What Gemini is told about the clip's video (videoMetadata, snake_case as the SDK takes it), or None.

    A clip of the `exact` cut holds its window and nothing else: no offset. A stream-copied clip starts at the keyframe
    before its window (and may end after it): the offsets place the window on the file's own timeline, which holds
    whether or not Gemini applies the mp4 edit list (no documentation says)."""
    metadata: dict[str, Any] = {}
    spans = (clip.file_start, clip.file_end, clip.window_start, clip.window_end)
    if clip.cut_mode == "copy" and None not in spans:
        file_start, file_end, start, end = spans
        if file_start < start - _EDGE_S or file_end > end + _EDGE_S:
            metadata["start_offset"] = f"{start - file_start:.3f}s"
            metadata["end_offset"] = f"{end - file_start:.3f}s"
    if fps is not None:
        metadata["fps"] = fps
    return metadata or None


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
    sent = video_metadata(request.clip, request.video_fps) if request.video else None
    if sent is not None:  # what part of the clip Gemini looks at, and how densely (absent: the whole file at 1 fps)
        material["video_metadata"] = sent
    if not request.video:  # a text-only request: its text decides its answer, whatever clip it is about
        del material["clip_sha256"]
        material["video"] = False
    if request.backend == "openai":
        # Another API: its answers are never served for a Vertex request of the same model name and text, and the way
        # the clip was shown (a video, or which frames) decides what the model saw.
        material["api"] = "openai_chat_completions"
        if request.video:
            material["video_input"] = request.video_input
    if request.backend == "replay":
        # Replay answers are examples looked up by the clip's ids: keep them apart from real answers, and per clip.
        material["backend"] = "replay"
        material["clip"] = request.clip.key
        if request.purpose != "qa":
            material["purpose"] = request.purpose
    return hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# A prompt may quote the window's own text (the NLQ query, the narration, the moment label) where it writes this.
WINDOW_TEXT = "{window_text}"
NO_WINDOW_TEXT = "(none)"


def prompt_for(clip: ClipRecord, prompt_text: str) -> str:
    """The prompt as sent about one clip: `{window_text}` replaced by the window's text (a prompt without it, as
    EVUD's, is sent as written, so its request keys do not change)."""
    if WINDOW_TEXT not in prompt_text:
        return prompt_text
    return prompt_text.replace(WINDOW_TEXT, (clip.query or "").strip() or NO_WINDOW_TEXT)


def build_request(clip: ClipRecord, gemini: GeminiParams, prompt: PromptParams) -> GeminiRequest:
    return GeminiRequest(clip=clip, model=gemini.model, prompt_text=prompt_for(clip, prompt.text),
                         generation=generation_config(gemini), backend=gemini.backend,
                         response_schema=prompt.response_schema, video_fps=check_video_fps(gemini.video_fps),
                         video_input=video_input(gemini))
