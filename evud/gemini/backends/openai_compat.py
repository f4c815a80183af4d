"""The `openai` backend: any OpenAI-compatible chat-completions server (vLLM, SGLang) through the official client.

`gemini.base_url` names the server (`http://host:8000/v1`), `gemini.model` the model it serves; the key comes from
OPENAI_API_KEY (any value for a server started without `--api-key`), never from params. The clip goes as the server
takes it (gemini.video_mode): a `video_url` part holding its bytes as a `data:video/mp4;base64` URL (video models on
vLLM and SGLang, e.g. Qwen2.5-VL), or `frames`: gemini.video_frames JPEG `image_url` parts (any image model).
A structured answer (prompt.response_schema, verify's checks) is asked with `response_format: json_schema`.

The answer comes back as a chat completion and leaves as google-genai's GenerateContentResponse, what every backend
returns (evud.gemini.backend): `finish_reason: length` is MAX_TOKENS (re-asked once by generate), `content_filter`
and a refusal are a SAFETY block, usage is prompt/completion tokens. Retries (429, 408, 5xx, timeouts, dropped
connections) are ours, with the client's own switched off, so each attempt passes the rate cap and is counted; a
401/403 after the preflight is credentials refused (the run stops asking); a 400 is a rejected request.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import openai
import tenacity
from google.genai import types

from evud.core.errors import UserError
from evud.core.params import GeminiParams, runtime_float, runtime_int
from evud.gemini.backend import BackendError, BatchOutcome
from evud.gemini.backends.vertex import RetryStats
from evud.gemini.frames import UnreadableClip, sample_frames
from evud.gemini.ratelimit import RequestRateLimiter
from evud.gemini.request import GeminiRequest

API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_REQUEST_TIMEOUT_S = 600
RETRIED_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
CREDENTIALS_STATUS = frozenset({401, 403})
REJECTED_STATUS = frozenset({400, 413, 422})  # the request itself is wrong (too long, bad media, bad params)
# finish_reason -> generateContent's finishReason; anything else (tool_calls, abort, ...) is OTHER.
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
_EMPTY_COMPLETION = {"id": "", "object": "chat.completion", "created": 0, "model": "", "choices": []}


class OpenAISetupError(UserError):
    """The openai backend cannot start: no server named, no key, the server unreachable, or the model not served."""


def make_client(gemini: GeminiParams) -> openai.OpenAI:
    if not gemini.base_url:
        raise OpenAISetupError("gemini.backend=openai needs the server's URL: run with -S gemini.base_url=http://HOST:8000/v1")
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise OpenAISetupError(f"gemini.backend=openai needs {API_KEY_ENV}: the server's --api-key, or any value "
                               f"(e.g. `export {API_KEY_ENV}=EMPTY`) for a server started without one")
    # Retries are ours (OpenAIBackend.generate): the client's would bypass the rate cap and the retry count.
    return openai.OpenAI(base_url=gemini.base_url, api_key=key, max_retries=0,
                         timeout=runtime_float("EVUD_REQUEST_TIMEOUT_S", DEFAULT_REQUEST_TIMEOUT_S))


def status_of(error: BaseException) -> int | None:
    return error.status_code if isinstance(error, openai.APIStatusError) else None


def is_transient(error: BaseException) -> bool:
    """Worth another attempt: 408/409/429/5xx, timeouts and dropped or refused connections."""
    status = status_of(error)
    return status in RETRIED_STATUS if status is not None else isinstance(error, openai.APIConnectionError)


def describe_error(error: BaseException) -> str:
    """`reason: detail`; the reason (before the colon) is what metrics count failures by."""
    status = status_of(error)
    if status is not None:
        return f"api_error_{status}: {server_message(error)}"
    if isinstance(error, openai.APITimeoutError):
        return "timeout: no answer within EVUD_REQUEST_TIMEOUT_S"
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        return f"connection_error: {type(cause).__name__ if cause else 'APIConnectionError'}: {cause or error}"
    return f"{type(error).__name__}: {error}"


def server_message(error: openai.APIStatusError) -> str:
    """What the server said: vLLM's {"error": {"message": ...}} (or an older flat body, or a bare string)."""
    body = error.body
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    if isinstance(body, str) and body:
        return body
    return error.message


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def window_seconds(request: GeminiRequest) -> float | None:
    clip = request.clip
    if clip.window_start is not None and clip.window_end is not None:
        return max(clip.window_end - clip.window_start, 0.0)
    return None


def media_parts(request: GeminiRequest, clips_dir: Path, inline_limit_mb: float) -> list[dict[str, Any]]:
    """The clip as content parts: one video_url, or N image_url frames (none for a text-only request)."""
    if not request.video:
        return []
    if not request.clip.clip_path:
        raise BackendError("clip_unreadable: the openai backend sends the clip's own bytes and this clip has no local "
                           "file: keep clips local (clip.keep_local=true)")
    path = clips_dir / request.clip.clip_path
    mode = (request.video_input or {}).get("mode", "video_url")
    try:
        size = path.stat().st_size
        if mode != "frames" and size > inline_limit_mb * 1e6:
            raise BackendError(f"inline_too_large: the clip file is {size / 1e6:.1f} MB, over gemini.inline_limit_mb="
                               f"{inline_limit_mb:g}; send frames instead (-S gemini.video_mode=frames) or cut "
                               "smaller clips (clip.height, data.max_window_sec)")
        if mode == "frames":
            images = sample_frames(path, request.video_input["frames"], window_seconds(request))
            return [{"type": "image_url", "image_url": {"url": data_url("image/jpeg", image)}} for image in images]
        return [{"type": "video_url", "video_url": {"url": data_url("video/mp4", path.read_bytes())}}]
    except (OSError, UnreadableClip) as err:
        raise BackendError(f"clip_unreadable: {err}") from None


def chat_body(request: GeminiRequest, clips_dir: Path, inline_limit_mb: float = 256) -> dict[str, Any]:
    """The chat.completions.create arguments: the clip first, then the prompt (the order the recipe uses)."""
    settings = dict(request.generation)
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [{"role": "user", "content": [*media_parts(request, clips_dir, inline_limit_mb),
                                                   {"type": "text", "text": request.prompt_text}]}],
    }
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("seed", "seed"),
                         ("max_output_tokens", "max_tokens"), ("presence_penalty", "presence_penalty"),
                         ("frequency_penalty", "frequency_penalty"), ("stop_sequences", "stop")):
        if ours in settings:
            body[theirs] = settings[ours]
    extra = dict(settings.get("extra_body") or {})
    if "top_k" in settings:  # not an OpenAI param: vLLM and SGLang take it in the body
        extra["top_k"] = settings["top_k"]
    if extra:
        body["extra_body"] = extra
    if request.response_schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": f"evud_{request.purpose}", "schema": request.response_schema, "strict": True}}
    return body


def as_generate_content(completion: Any) -> types.GenerateContentResponse:
    """A chat completion as the generateContent response every backend returns."""
    usage = completion.usage
    usage_metadata = None if usage is None else {
        "promptTokenCount": usage.prompt_tokens or 0, "candidatesTokenCount": usage.completion_tokens or 0,
        "totalTokenCount": usage.total_tokens or 0}
    body: dict[str, Any] = {"usageMetadata": usage_metadata, "modelVersion": completion.model,
                            "responseId": completion.id}
    if completion.choices:
        choice = completion.choices[0]
        message = choice.message
        finish = FINISH_REASONS.get(choice.finish_reason or "", "OTHER")
        if getattr(message, "refusal", None):  # the model declined (structured outputs say so here)
            finish = "SAFETY"
        parts = []
        reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
        if reasoning:  # a reasoning parser's output (vLLM --reasoning-parser): kept as a thought, never the answer
            parts.append({"text": reasoning, "thought": True})
        if message.content:
            parts.append({"text": message.content})
        body["candidates"] = [{"content": {"role": "model", "parts": parts}, "finishReason": finish}]
    return types.GenerateContentResponse.model_validate({k: v for k, v in body.items() if v is not None})


class OpenAIBackend:
    name = "openai"
    billed = True  # a served model costs GPU time or a provider's tokens: answers are kept, never asked twice
    supports_batch = False

    def __init__(self, gemini: GeminiParams, clips_dir: Path):
        self._gemini = gemini
        self._clips_dir = clips_dir
        self._client: openai.OpenAI | None = None
        self.limiter = RequestRateLimiter(runtime_float("EVUD_MAX_RPM", 0) or None)
        self.retries = RetryStats()
        self._attempts = runtime_int("EVUD_RETRY_ATTEMPTS", 8)
        self._wait = tenacity.wait_random_exponential(multiplier=runtime_float("EVUD_RETRY_INITIAL_S", 1.0),
                                                      max=runtime_float("EVUD_RETRY_MAX_S", 60.0))
        # Built here, in one thread: pydantic finishes building a model on first use, which worker threads must not
        # do at once (as for the Gen AI SDK's models, evud.gemini.backends.make_backend).
        openai.types.chat.ChatCompletion.model_validate(_EMPTY_COMPLETION)

    @property
    def client(self) -> openai.OpenAI:
        """Made when the first request is about to go: a run whose answers are all kept needs no server or key."""
        if self._client is None:
            self._client = make_client(self._gemini)
        return self._client

    def retries_made(self) -> int:
        return self.retries.total

    def _retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(stop=tenacity.stop_after_attempt(self._attempts), wait=self._wait,
                                 retry=tenacity.retry_if_exception(is_transient), before_sleep=self._count_retry,
                                 reraise=True)

    def _count_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.retries.add(describe_error(error).split(":", 1)[0] if error else "unknown")

    def check_ready(self) -> None:
        """GET /v1/models before the first clip: the server answers, accepts the key and serves gemini.model."""
        gemini = self._gemini
        try:
            served = [model.id for model in self._retrying()(self.client.models.list)]
        except openai.APIStatusError as err:
            if err.status_code in CREDENTIALS_STATUS:
                raise OpenAISetupError(f"{gemini.base_url} refused {API_KEY_ENV} ({describe_error(err)}): set it to "
                                       "the key the server was started with (vllm serve --api-key)") from None
            raise OpenAISetupError(f"{gemini.base_url}/models answered {describe_error(err)}: check that "
                                   "gemini.base_url names an OpenAI-compatible server (it ends in /v1)") from None
        except openai.APIConnectionError as err:
            raise OpenAISetupError(f"the server at {gemini.base_url} could not be reached ({describe_error(err)}): "
                                   "start it (vllm serve MODEL) or fix gemini.base_url, then run again") from None
        if gemini.model not in served:
            raise OpenAISetupError(f"model {gemini.model!r} is not served by {gemini.base_url} (it serves: "
                                   f"{', '.join(served) or 'nothing'}): name one of them (gemini.model, or "
                                   f"verify.<check>_model for a check), or serve it (vllm serve {gemini.model})")

    def _call(self, body: dict[str, Any]) -> Any:
        self.limiter.wait()
        return self.client.chat.completions.create(**body)

    def generate(self, request: GeminiRequest) -> types.GenerateContentResponse:
        body = chat_body(request, self._clips_dir, self._gemini.inline_limit_mb)
        try:
            completion = self._retrying()(self._call, body)
        except openai.APIStatusError as err:
            status = err.status_code
            raise BackendError(describe_error(err), retryable=status in RETRIED_STATUS or status in CREDENTIALS_STATUS,
                               rejected=status in REJECTED_STATUS,
                               credentials_refused=status in CREDENTIALS_STATUS) from None
        except openai.APIConnectionError as err:
            raise BackendError(describe_error(err), retryable=True) from None
        return as_generate_content(completion)

    def ask_batch(self, *args: object, **kwargs: object) -> BatchOutcome:
        raise UserError("gemini.mode=batch needs gemini.backend=vertex")
