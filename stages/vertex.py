"""The `vertex` backend: Gemini on Vertex AI through the Gen AI SDK (google-genai).

Credentials come from Google's standard chain (ADC), or from a short-lived token in
GOOGLE_OAUTH_ACCESS_TOKEN (what `gcloud auth print-access-token` prints); never from params.
Timeout and retry counts are runtime knobs (env), since they change no answer.
"""

from __future__ import annotations

import os
from pathlib import Path

import google.oauth2.credentials
import httpx
from google import genai
from google.genai import errors, types

from .gemini import BackendError, GeminiRequest
from .params import GeminiParams, runtime_int

RETRIED_STATUS = [408, 429, 500, 502, 503, 504]  # dynamic shared quota: 429 means back off and retry


def make_client(gemini: GeminiParams) -> genai.Client:
    token = os.environ.get("GOOGLE_OAUTH_ACCESS_TOKEN")
    credentials = google.oauth2.credentials.Credentials(token=token) if token else None
    http_options = types.HttpOptions(
        base_url=gemini.base_url,
        timeout=runtime_int("EVUD_REQUEST_TIMEOUT_S", 300) * 1000,  # milliseconds
        retry_options=types.HttpRetryOptions(
            attempts=runtime_int("EVUD_RETRY_ATTEMPTS", 6), initial_delay=1.0, max_delay=60.0,
            exp_base=2.0, jitter=1.0, http_status_codes=RETRIED_STATUS),
    )
    return genai.Client(vertexai=True, project=gemini.project, location=gemini.location,
                        credentials=credentials, http_options=http_options)


def video_part(request: GeminiRequest, clips_dir: Path) -> types.Part:
    """The clip as a gs:// reference when uploaded, else inline bytes; offsets trim stream-copy padding."""
    clip = request.clip
    metadata = None
    if clip.file_end is not None and clip.window_end is not None and clip.window_start is not None and clip.file_end > clip.window_end:
        # The file's timeline starts at the window (edit list); frames after its end are GOP padding.
        metadata = types.VideoMetadata(start_offset="0s", end_offset=f"{clip.window_end - clip.window_start:.3f}s")
    if clip.clip_uri:
        return types.Part(file_data=types.FileData(file_uri=clip.clip_uri, mime_type="video/mp4"), video_metadata=metadata)
    data = (clips_dir / (clip.clip_path or "")).read_bytes()
    return types.Part(inline_data=types.Blob(data=data, mime_type="video/mp4"), video_metadata=metadata)


class VertexBackend:
    name = "vertex"

    def __init__(self, gemini: GeminiParams, clips_dir: Path):
        self._client = make_client(gemini)
        self._clips_dir = clips_dir

    def generate(self, request: GeminiRequest) -> types.GenerateContentResponse:
        contents = [types.Content(role="user", parts=[video_part(request, self._clips_dir), types.Part(text=request.prompt_text)])]
        config = types.GenerateContentConfig(**request.generation, response_json_schema=request.response_schema)
        try:
            return self._client.models.generate_content(model=request.model, contents=contents, config=config)
        except errors.APIError as err:
            raise BackendError(f"api_error_{err.code}: {err.status}: {err.message}") from None
        except httpx.TimeoutException as err:
            raise BackendError(f"timeout: {type(err).__name__}") from None
        except httpx.HTTPError as err:
            raise BackendError(f"http_error: {type(err).__name__}: {err}") from None
        except OSError as err:
            raise BackendError(f"clip_unreadable: {err}") from None
