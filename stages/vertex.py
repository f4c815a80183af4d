"""The `vertex` backend: Gemini on Vertex AI through the Gen AI SDK (google-genai).

Credentials come from Google's standard chain (ADC), or from a short-lived token in
GOOGLE_OAUTH_ACCESS_TOKEN (what `gcloud auth print-access-token` prints); never from params. They are
resolved once, before anything is asked, and one free call (countTokens) checks project, location, model
and credentials before the first clip: a setup mistake stops the stage and marks no clip failed.
Timeout, retries and the rate cap are runtime knobs (env), since they change no answer.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import google.auth
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
# No answer after the request went out: Vertex may still process (and bill) it, so it is not asked again in the run.
READ_TIMEOUT_ERRORS: tuple[type[BaseException], ...] = tuple(m.ReadTimeout for m in _HTTPX)
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = tuple(m.TransportError for m in _HTTPX)  # includes timeouts
HTTP_ERRORS: tuple[type[BaseException], ...] = tuple(m.HTTPError for m in _HTTPX)

RETRIED_STATUS = frozenset({408, 429, 500, 502, 503, 504})  # dynamic shared quota: 429 means back off and retry
# Vertex's own deadline for a request is 10 minutes (API errors page: 504 means the client's deadline was shorter);
# waiting longer than that means a client timeout is a lost connection, not a slow answer.
DEFAULT_REQUEST_TIMEOUT_S = 620
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
NO_CREDENTIALS = ("no Google credentials: run `gcloud auth application-default login` (or point "
                  "GOOGLE_APPLICATION_CREDENTIALS at a service-account key), or set GOOGLE_OAUTH_ACCESS_TOKEN to a "
                  "token from `gcloud auth print-access-token`")


class VertexSetupError(UserError):
    """The vertex backend cannot start: no project, no credentials, no access, or the model not served there."""


def google_credentials() -> google.auth.credentials.Credentials:
    """The credentials of this run, resolved once: a static GOOGLE_OAUTH_ACCESS_TOKEN (never refreshed), else ADC."""
    token = os.environ.get("GOOGLE_OAUTH_ACCESS_TOKEN", "").strip()
    if token:
        return google.oauth2.credentials.Credentials(token=token)
    try:
        credentials, _ = google.auth.default(scopes=_SCOPES)
    except auth_exceptions.DefaultCredentialsError:
        raise VertexSetupError(NO_CREDENTIALS) from None
    return credentials


def make_client(gemini: GeminiParams, credentials: google.auth.credentials.Credentials) -> genai.Client:
    if not gemini.project:
        raise VertexSetupError("gemini.backend=vertex needs a Google Cloud project: run with -S gemini.project=MY_PROJECT")
    http_options = types.HttpOptions(
        base_url=gemini.base_url,
        timeout=int(runtime_float("EVUD_REQUEST_TIMEOUT_S", DEFAULT_REQUEST_TIMEOUT_S) * 1000),  # ms, per request
        # Retries are ours (VertexBackend.generate), so that each attempt passes the rate cap and is counted.
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(vertexai=True, project=gemini.project, location=gemini.location,
                        credentials=credentials, http_options=http_options)


def is_transient(error: BaseException) -> bool:
    """Worth another attempt: 408/429/5xx, refused or dropped connections, auth transport hiccups, and timeouts."""
    if isinstance(error, errors.APIError):
        return error.code in RETRIED_STATUS
    return isinstance(error, TRANSPORT_ERRORS + (auth_exceptions.TransportError,))


def retry_in_run(error: BaseException) -> bool:
    """Transient, and not possibly billed: a request that timed out waiting for its answer is not sent again now."""
    return is_transient(error) and not isinstance(error, READ_TIMEOUT_ERRORS)


def describe_error(error: BaseException) -> str:
    """`reason: detail`; the reason (before the colon) is what metrics count failures by."""
    if isinstance(error, errors.APIError):
        return f"api_error_{error.code}: {error.status}: {error.message}"
    if isinstance(error, READ_TIMEOUT_ERRORS):
        return (f"timeout: no answer within EVUD_REQUEST_TIMEOUT_S after the request was sent ({type(error).__name__}); "
                "Vertex may still have processed and billed it, so it was not asked again in this run")
    if isinstance(error, TIMEOUT_ERRORS):
        return f"timeout: {type(error).__name__} before the request was sent"
    if isinstance(error, TRANSPORT_ERRORS):
        return f"connection_error: {type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}"


def video_metadata(clip: ClipRecord) -> types.VideoMetadata | None:
    """Offsets that restrict Gemini to the window when the clip file holds frames past its end."""
    if None in (clip.file_end, clip.window_end, clip.window_start) or clip.file_end <= clip.window_end:
        return None
    # The file's timeline starts at the window (edit list); frames after its end are GOP padding.
    return types.VideoMetadata(start_offset="0s", end_offset=f"{clip.window_end - clip.window_start:.3f}s")


def video_part(request: GeminiRequest, clips_dir: Path, video_source: str = "auto",
               inline_limit_mb: float = 256) -> types.Part:
    """The clip as its gs:// copy, or as inline bytes when there is none (or video_source=inline)."""
    clip = request.clip
    metadata = video_metadata(clip)
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


def setup_problem(err: errors.APIError, gemini: GeminiParams) -> str:
    """What a refused preflight means for this setup, and what to change."""
    said = f"(Vertex: {err.code} {err.status}: {err.message})"
    if err.code == 404:
        return (f"model {gemini.model} is not served in location {gemini.location} for project {gemini.project} "
                f"{said}: use -S gemini.location=global, or a location the model's page lists, or another model")
    if err.code == 403:
        return (f"permission denied on project {gemini.project} {said}: enable the Vertex AI API in it and give "
                "these credentials the Vertex AI User role (roles/aiplatform.user)")
    if err.code == 401:
        return (f"the Google credentials were refused {said}: run `gcloud auth application-default login` again, "
                "or set a fresh GOOGLE_OAUTH_ACCESS_TOKEN")
    return f"Vertex refused the setup for model {gemini.model} in {gemini.location} {said}"


class VertexBackend:
    name = "vertex"
    billed = True

    def __init__(self, gemini: GeminiParams, clips_dir: Path):
        if not gemini.project:
            raise VertexSetupError("gemini.backend=vertex needs a Google Cloud project: run with "
                                   "-S gemini.project=MY_PROJECT")
        self.credentials = google_credentials()  # once, before anything is asked
        self.client = make_client(gemini, self.credentials)
        self._clips_dir = clips_dir
        self._video_source = gemini.video_source
        self._inline_limit_mb = gemini.inline_limit_mb
        self._gemini = gemini
        self.limiter = RequestRateLimiter(runtime_float("EVUD_MAX_RPM", 0) or None)
        self.retries = RetryStats()
        self._attempts = runtime_int("EVUD_RETRY_ATTEMPTS", 8)
        # Exponential backoff with full jitter (tenacity): spreads retries of many threads after a 429 burst.
        self._wait = tenacity.wait_random_exponential(multiplier=runtime_float("EVUD_RETRY_INITIAL_S", 1.0),
                                                      max=runtime_float("EVUD_RETRY_MAX_S", 60.0))

    def retries_made(self) -> int:
        return self.retries.total

    def _retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(stop=tenacity.stop_after_attempt(self._attempts), wait=self._wait,
                                 retry=tenacity.retry_if_exception(retry_in_run), before_sleep=self._count_retry,
                                 reraise=True)

    def check_ready(self) -> None:
        """One free call (countTokens) before the first clip: project, location, model and credentials work.

        A setup mistake stops the stage here with what to do, instead of failing every clip on its own.
        """
        gemini = self._gemini
        try:
            self._retrying()(self.client.models.count_tokens, model=gemini.model, contents="Is this model here?")
        except errors.APIError as err:
            raise VertexSetupError(setup_problem(err, gemini)) from None
        except auth_exceptions.RefreshError as err:
            raise VertexSetupError(f"the Google credentials could not be refreshed ({err}): run `gcloud auth "
                                   "application-default login` again, or set a fresh GOOGLE_OAUTH_ACCESS_TOKEN") from None
        except (auth_exceptions.TransportError, *HTTP_ERRORS) as err:
            raise VertexSetupError(f"Vertex AI could not be reached ({describe_error(err)}); check the network "
                                   "and gemini.base_url, then run again") from None

    def _count_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.retries.add(describe_error(error).split(":", 1)[0] if error else "unknown")

    def _call(self, request: GeminiRequest, contents: list[types.Content],
              config: types.GenerateContentConfig) -> types.GenerateContentResponse:
        self.limiter.wait()
        return self.client.models.generate_content(model=request.model, contents=contents, config=config)

    def generate(self, request: GeminiRequest) -> types.GenerateContentResponse:
        contents = request_contents(request, video_part(request, self._clips_dir, self._video_source,
                                                        self._inline_limit_mb))
        config = request_config(request)
        try:
            return self._retrying()(self._call, request, contents, config)
        except (errors.APIError, auth_exceptions.TransportError, *HTTP_ERRORS) as err:
            raise BackendError(describe_error(err), retryable=is_transient(err)) from None
