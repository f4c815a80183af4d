"""How a request goes to Vertex AI: its parts (clip, offsets, prompt), its config, and which errors are worth
another attempt. Shared by the online backend (evud.gemini.backends.vertex) and its batch jobs
(evud.gemini.backends.vertex_batch)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from google.auth import exceptions as auth_exceptions
from google.genai import errors, types

from evud.gemini.backend import BackendError
from evud.gemini.request import GeminiRequest, video_metadata


def _httpx_modules() -> list[Any]:
    """google-genai 3.x sends with httpx2 (a fork under its own import name); older releases with httpx."""
    modules = []
    for name in ("httpx2", "httpx"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            pass
    return modules


_HTTPX = _httpx_modules()
TIMEOUT_ERRORS: tuple[type[BaseException], ...] = tuple(m.TimeoutException for m in _HTTPX)
# No answer after the request went out: Vertex may still process (and bill) it, so it is not asked again in the run.
READ_TIMEOUT_ERRORS: tuple[type[BaseException], ...] = tuple(m.ReadTimeout for m in _HTTPX)
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = tuple(m.TransportError for m in _HTTPX)  # includes timeouts
HTTP_ERRORS: tuple[type[BaseException], ...] = tuple(m.HTTPError for m in _HTTPX)

RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})  # dynamic shared quota: 429 means back off and retry
# Vertex's own deadline for a request is 10 minutes (API errors page: 504 means the client's deadline was shorter);
# waiting longer than that means a client timeout is a lost connection, not a slow answer.
DEFAULT_REQUEST_TIMEOUT_S = 620
def is_transient(error: BaseException) -> bool:
    """Worth another attempt: 408/429/5xx, refused or dropped connections, auth transport hiccups, and timeouts."""
    if isinstance(error, errors.APIError):
        return error.code in RETRIED_STATUS
    return isinstance(error, TRANSPORT_ERRORS + (auth_exceptions.TransportError,))


def is_rejection(error: BaseException) -> bool:
    """Vertex refused the request itself (400 INVALID_ARGUMENT): sending it again unchanged can only fail again."""
    return isinstance(error, errors.APIError) and error.code == 400


def is_credentials_refusal(error: BaseException) -> bool:
    """The service refused the credentials (401, 403): after a passing preflight, a token that expired mid-run."""
    return (isinstance(error, errors.APIError) and error.code in (401, 403)) or \
        isinstance(error, auth_exceptions.RefreshError)


def retry_in_run(error: BaseException) -> bool:
    """Transient, and not possibly billed: a request that timed out waiting for its answer is not sent again now."""
    return is_transient(error) and not isinstance(error, READ_TIMEOUT_ERRORS)


def describe_error(error: BaseException) -> str:
    """`reason: detail`; the reason (before the colon) is what metrics count failures by."""
    if isinstance(error, errors.APIError):
        return f"api_error_{error.code}: {error.status}: {error.message}"
    if isinstance(error, auth_exceptions.RefreshError):
        return f"credentials_refused: the credentials could not be refreshed: {error}"
    if isinstance(error, READ_TIMEOUT_ERRORS):
        return (f"timeout: no answer within EVUD_REQUEST_TIMEOUT_S after the request was sent ({type(error).__name__}); "
                "Vertex may still have processed and billed it, so it was not asked again in this run")
    if isinstance(error, TIMEOUT_ERRORS):
        return f"timeout: {type(error).__name__} before the request was sent"
    if isinstance(error, TRANSPORT_ERRORS):
        return f"connection_error: {type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}"


def sent_video_metadata(request: GeminiRequest) -> types.VideoMetadata | None:
    """The videoMetadata part of the request: offsets of a stream-copied clip's window, the frame rate asked for."""
    metadata = video_metadata(request.clip, request.video_fps)
    return types.VideoMetadata(**metadata) if metadata is not None else None


def video_part(request: GeminiRequest, clips_dir: Path, video_source: str = "auto",
               inline_limit_mb: float = 256) -> types.Part:
    """The clip as its gs:// copy, or as inline bytes when there is none (or video_source=inline)."""
    clip = request.clip
    metadata = sent_video_metadata(request)
    if clip.clip_uri and video_source == "auto":
        return types.Part(file_data=types.FileData(file_uri=clip.clip_uri, mime_type="video/mp4"), video_metadata=metadata)
    path = clips_dir / (clip.clip_path or "")
    try:
        size = path.stat().st_size
        if size > inline_limit_mb * 1e6:
            raise BackendError(
                f"inline_too_large: the clip file is {size / 1e6:.1f} MB, over gemini.inline_limit_mb={inline_limit_mb:g} "
                "(Vertex's inline part limit); give clips a gs:// copy (-S gcs.bucket=...) with "
                "gemini.video_source=auto, or use gemini.mode=batch")
        data = path.read_bytes()
    except OSError as err:
        raise BackendError(f"clip_unreadable: {err}") from None
    return types.Part(inline_data=types.Blob(data=data, mime_type="video/mp4"), video_metadata=metadata)


def request_contents(request: GeminiRequest, video: types.Part | None) -> list[types.Content]:
    """The clip first, then the prompt: the order the published recipe used (a text-only request: the prompt)."""
    parts = [video] if video is not None else []
    return [types.Content(role="user", parts=[*parts, types.Part(text=request.prompt_text)])]


def generation_settings(request: GeminiRequest) -> dict[str, Any]:
    """Generation config in the SDK's snake_case names; a response schema turns on JSON output."""
    structured: dict[str, Any] = {}
    if request.response_schema is not None:
        structured = {"response_mime_type": "application/json", "response_json_schema": request.response_schema}
    return {**request.generation, **structured}


def request_config(request: GeminiRequest) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(**generation_settings(request))
