"""The `vertex` backend: Gemini on Vertex AI through the Gen AI SDK (google-genai).

Credentials come from Google's standard chain (ADC), or from a short-lived token in
GOOGLE_OAUTH_ACCESS_TOKEN (what `gcloud auth print-access-token` prints); never from params. They are
resolved once, before anything is asked, and one free call (countTokens) checks project, location, model
and credentials before the first clip: a setup mistake stops the stage and marks no clip failed.
Timeout, retries and the rate cap are runtime knobs (env), since they change no answer.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import google.auth
import google.oauth2.credentials
import tenacity
from google import genai
from google.auth import exceptions as auth_exceptions
from google.genai import errors, types

from evud.core.errors import UserError
from evud.core.params import GeminiParams, runtime_float, runtime_int
from evud.gemini.backend import BackendError, BatchOutcome
from evud.gemini.backends.vertex_requests import (
    DEFAULT_REQUEST_TIMEOUT_S,
    HTTP_ERRORS,
    describe_error,
    is_credentials_refusal,
    is_rejection,
    is_transient,
    request_config,
    request_contents,
    retry_in_run,
    video_part,
)
from evud.gemini.ratelimit import RequestRateLimiter
from evud.gemini.request import GeminiRequest

if TYPE_CHECKING:
    from evud.gemini.answer_store import AnswerStore

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
    supports_batch = True

    def __init__(self, gemini: GeminiParams, clips_dir: Path):
        self._clients: tuple[google.auth.credentials.Credentials, genai.Client] | None = None
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

    def _setup(self) -> tuple[google.auth.credentials.Credentials, genai.Client]:
        """Credentials and client, resolved once, when the first request is about to be made: a run whose answers
        are all paid for needs neither a project nor credentials (a teammate's clone, CI)."""
        if self._clients is None:
            if not self._gemini.project:
                raise VertexSetupError("gemini.backend=vertex needs a Google Cloud project: run with "
                                       "-S gemini.project=MY_PROJECT")
            credentials = google_credentials()
            self._clients = credentials, make_client(self._gemini, credentials)
        return self._clients

    @property
    def credentials(self) -> google.auth.credentials.Credentials:
        return self._setup()[0]

    @property
    def client(self) -> genai.Client:
        return self._setup()[1]

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
        video = video_part(request, self._clips_dir, self._video_source, self._inline_limit_mb) if request.video else None
        contents = request_contents(request, video)
        config = request_config(request)
        try:
            return self._retrying()(self._call, request, contents, config)
        except (errors.APIError, auth_exceptions.TransportError, auth_exceptions.RefreshError, *HTTP_ERRORS) as err:
            refused = is_credentials_refusal(err)
            raise BackendError(describe_error(err), retryable=is_transient(err) or refused, rejected=is_rejection(err),
                               credentials_refused=refused) from None

    def ask_batch(self, requests: list[GeminiRequest], store: AnswerStore, clips_dir: Path,
                  concurrency: int) -> BatchOutcome:
        """Answer requests in Vertex batch prediction jobs (half price), storing each final answer."""
        from evud.gemini.backends.vertex_batch import run_batch  # only batch mode needs Cloud Storage

        return run_batch(requests, self._gemini, self.client, self.credentials, store, clips_dir, concurrency)
