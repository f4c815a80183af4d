"""The `vertex` backend: Gemini on Vertex AI through the Gen AI SDK (google-genai).

Credentials come from Google's standard chain (ADC), or from a short-lived token in
GOOGLE_OAUTH_ACCESS_TOKEN (what `gcloud auth print-access-token` prints); never from params.
Timeout, retries and the rate cap are runtime knobs (env), since they change no answer.
"""

from __future__ import annotations

import importlib
import math
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import google.oauth2.credentials
import tenacity
from google import genai
from google.auth import exceptions as auth_exceptions
from google.genai import errors, types

from .errors import UserError
from .gemini import BackendError, GeminiRequest
from .params import GeminiParams, runtime_float, runtime_int
from .ratelimit import RequestRateLimiter
from .records import ClipRecord


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
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = tuple(m.TransportError for m in _HTTPX)  # includes timeouts
HTTP_ERRORS: tuple[type[BaseException], ...] = tuple(m.HTTPError for m in _HTTPX)

RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})  # dynamic shared quota: 429 means back off and retry
# Vertex caps a whole request with inline data at 20 MB; base64 makes the bytes 4/3 larger.
INLINE_REQUEST_LIMIT_BYTES = 20_000_000  # decimal MB: the conservative reading
_REQUEST_OVERHEAD_BYTES = 64 * 1024  # JSON framing, generation config, schema: generous


class VertexSetupError(UserError):
    """The vertex backend cannot start with these params (no project)."""


def google_credentials() -> google.oauth2.credentials.Credentials | None:
    """A static token when GOOGLE_OAUTH_ACCESS_TOKEN is set (never refreshed), else None: the SDK uses ADC."""
    token = os.environ.get("GOOGLE_OAUTH_ACCESS_TOKEN", "").strip()
    return google.oauth2.credentials.Credentials(token=token) if token else None


def make_client(gemini: GeminiParams) -> genai.Client:
    if not gemini.project:
        raise VertexSetupError("gemini.backend=vertex needs a Google Cloud project: run with -S gemini.project=MY_PROJECT")
    http_options = types.HttpOptions(
        base_url=gemini.base_url,
        timeout=int(runtime_float("EVUD_REQUEST_TIMEOUT_S", 300) * 1000),  # milliseconds, per request
        # Retries are ours (VertexBackend.generate), so that each attempt passes the rate cap and is counted.
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(vertexai=True, project=gemini.project, location=gemini.location,
                        credentials=google_credentials(), http_options=http_options)


def is_transient(error: BaseException) -> bool:
    """Worth another attempt: 408/429/5xx, timeouts, refused or dropped connections, auth transport hiccups."""
    if isinstance(error, errors.APIError):
        return error.code in RETRIED_STATUS
    return isinstance(error, TRANSPORT_ERRORS + (auth_exceptions.TransportError,))


def describe_error(error: BaseException) -> str:
    """`reason: detail`; the reason (before the colon) is what metrics count failures by."""
    if isinstance(error, errors.APIError):
        return f"api_error_{error.code}: {error.status}: {error.message}"
    if isinstance(error, TIMEOUT_ERRORS):
        return f"timeout: no answer within EVUD_REQUEST_TIMEOUT_S ({type(error).__name__})"
    if isinstance(error, TRANSPORT_ERRORS):
        return f"connection_error: {type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}"


def video_metadata(clip: ClipRecord) -> types.VideoMetadata | None:
    """Offsets that restrict Gemini to the window when the clip file holds frames past its end."""
    if None in (clip.file_end, clip.window_end, clip.window_start) or clip.file_end <= clip.window_end:
        return None
    # The file's timeline starts at the window (edit list); frames after its end are GOP padding.
    return types.VideoMetadata(start_offset="0s", end_offset=f"{clip.window_end - clip.window_start:.3f}s")


def inline_request_bytes(clip_bytes: int, prompt_text: str) -> int:
    return 4 * math.ceil(clip_bytes / 3) + len(prompt_text.encode()) + _REQUEST_OVERHEAD_BYTES


def video_part(request: GeminiRequest, clips_dir: Path, video_source: str = "auto") -> types.Part:
    """The clip as its gs:// copy, or as inline bytes when there is none (or video_source=inline)."""
    clip = request.clip
    metadata = video_metadata(clip)
    if clip.clip_uri and video_source == "auto":
        return types.Part(file_data=types.FileData(file_uri=clip.clip_uri, mime_type="video/mp4"), video_metadata=metadata)
    path = clips_dir / (clip.clip_path or "")
    try:
        size = path.stat().st_size
        if inline_request_bytes(size, request.prompt_text) > INLINE_REQUEST_LIMIT_BYTES:
            raise BackendError(
                f"inline_too_large: the clip file is {size / 1e6:.1f} MB, too big for Vertex's 20 MB inline request "
                f"cap; give it a gs:// copy (clip_uri) and use gemini.video_source=auto, or use gemini.mode=batch")
        data = path.read_bytes()
    except OSError as err:
        raise BackendError(f"clip_unreadable: {err}") from None
    return types.Part(inline_data=types.Blob(data=data, mime_type="video/mp4"), video_metadata=metadata)


def request_contents(request: GeminiRequest, video: types.Part) -> list[types.Content]:
    """The clip first, then the prompt: the order the published recipe used."""
    return [types.Content(role="user", parts=[video, types.Part(text=request.prompt_text)])]


def generation_settings(request: GeminiRequest) -> dict[str, Any]:
    """Generation config in the SDK's snake_case names; a response schema turns on JSON output."""
    structured: dict[str, Any] = {}
    if request.response_schema is not None:
        structured = {"response_mime_type": "application/json", "response_json_schema": request.response_schema}
    return {**request.generation, **structured}


def request_config(request: GeminiRequest) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(**generation_settings(request))


class RetryStats:
    """Retries made so far, by reason, across threads (for the metrics and the progress line)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_reason: Counter[str] = Counter()

    def add(self, reason: str) -> None:
        with self._lock:
            self.by_reason[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())


class VertexBackend:
    name = "vertex"
    billed = True

    def __init__(self, gemini: GeminiParams, clips_dir: Path):
        self.client = make_client(gemini)
        self._clips_dir = clips_dir
        self._video_source = gemini.video_source
        self.limiter = RequestRateLimiter(runtime_float("EVUD_MAX_RPM", 0) or None)
        self.retries = RetryStats()
        self._attempts = runtime_int("EVUD_RETRY_ATTEMPTS", 8)
        # Exponential backoff with full jitter (tenacity): spreads retries of many threads after a 429 burst.
        self._wait = tenacity.wait_random_exponential(multiplier=runtime_float("EVUD_RETRY_INITIAL_S", 1.0),
                                                      max=runtime_float("EVUD_RETRY_MAX_S", 60.0))

    def retries_made(self) -> int:
        return self.retries.total

    def _count_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.retries.add(describe_error(error).split(":", 1)[0] if error else "unknown")

    def _call(self, request: GeminiRequest, contents: list[types.Content],
              config: types.GenerateContentConfig) -> types.GenerateContentResponse:
        self.limiter.wait()
        return self.client.models.generate_content(model=request.model, contents=contents, config=config)

    def generate(self, request: GeminiRequest) -> types.GenerateContentResponse:
        contents = request_contents(request, video_part(request, self._clips_dir, self._video_source))
        config = request_config(request)
        retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(self._attempts), wait=self._wait,
                                     retry=tenacity.retry_if_exception(is_transient),
                                     before_sleep=self._count_retry, reraise=True)
        try:
            return retrying(self._call, request, contents, config)
        except (errors.APIError, auth_exceptions.TransportError, *HTTP_ERRORS) as err:
            raise BackendError(describe_error(err), retryable=is_transient(err)) from None
