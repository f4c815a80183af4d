"""A local stand-in for an OpenAI-compatible server (vLLM's `vllm serve`) on 127.0.0.1, so the real `openai` client
code path runs in tests.

It answers what vLLM's OpenAI-compatible server answers:
  GET  /v1/models             {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "vllm", ...}]}
  POST /v1/chat/completions   {"object": "chat.completion", "choices": [{"message": ..., "finish_reason": ...}],
                               "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}
and errors as vLLM sends them: {"error": {"message", "type", "param", "code"}} (a model it does not serve: 404
NotFoundError), and a plain {"error": "Unauthorized"} 401 when the key is not the one the server was started with
(`--api-key`).

Each request is read the way vLLM reads it: content parts `text`, `image_url` and `video_url` with data URLs
(decoded: a video part is attributed to the sha256 of its bytes, the clip's content key; image parts are kept as the
JPEG bytes sent), `response_format: {"type": "json_schema", "json_schema": {"schema": ...}}` (a schema of verify's
checks is answered with JSON that follows it, as the local Vertex server does; any other schema, prompt=evud_json's,
with the seven items as JSON), `max_tokens` (an answer longer than it ends with finish_reason `length`).

What each clip (or check purpose) gets is scripted like the Vertex server's: a list of behaviours consumed one per
request, then `default`: "ok", "length", "content_filter", "empty", "hang" (no answer until the server stops), "drop"
(the connection closed without an answer), or an HTTP status.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
import threading
from collections import Counter
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from evud.core.params import GeminiParams, compose_params, load_section
from tests.support.fake_vertex import CATEGORIES, _named, check_purpose, evud_answer
from tests.support.local_http import local_url, send_body, start_local_server, stop_local_server
from tests.support.repo import PROJECT_ROOT

ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 408: "RequestTimeoutError", 413: "BadRequestError",
               429: "RateLimitError", 500: "InternalServerError", 502: "BadGatewayError", 503: "ServiceUnavailableError"}
CHARS_PER_TOKEN = 4
MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
API_KEY = "test-openai-key"


def vllm_error(code: int, message: str | None = None, param: str | None = None, flat: bool = False) -> dict[str, Any]:
    """vLLM's error body: {"error": {...}}; `flat`: the older one (vLLM before 0.10, SGLang) with the same fields at
    the top and "object": "error"."""
    error = {"message": message or f"injected {code}", "type": ERROR_TYPES.get(code, "InternalServerError"),
             "param": param, "code": code}
    return {"object": "error", **error} if flat else {"error": error}


def decode_data_url(url: str) -> tuple[str, bytes]:
    """(mime type, bytes) of a data URL, as vLLM's media connector reads it."""
    head, _, data = url.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        raise ValueError(f"not a base64 data URL: {url[:40]}")
    return head[5:-7], base64.b64decode(data, validate=True)


class Received:
    """One chat-completions request as the server read it."""

    def __init__(self, body: dict[str, Any]):
        self.body = body
        self.model: str = body.get("model", "")
        self.texts: list[str] = []
        self.videos: list[bytes] = []
        self.images: list[bytes] = []
        for message in body.get("messages", []):
            content = message.get("content")
            for part in [{"type": "text", "text": content}] if isinstance(content, str) else content or []:
                kind = part.get("type")
                if kind == "text":
                    self.texts.append(part["text"])
                elif kind in ("image_url", "video_url"):
                    mime, data = decode_data_url(part[kind]["url"])
                    expected = "image/" if kind == "image_url" else "video/"
                    if not mime.startswith(expected):
                        raise ValueError(f"a {kind} part holding {mime}")
                    (self.images if kind == "image_url" else self.videos).append(data)
                else:
                    raise ValueError(f"unknown content part type {kind!r}")
        response_format = body.get("response_format") or {}
        self.schema = (response_format.get("json_schema") or {}).get("schema") if response_format.get(
            "type") == "json_schema" else None
        self.purpose = check_purpose({"generationConfig": {"responseJsonSchema": self.schema}}) if self.schema else None

    @property
    def clip_id(self) -> str:
        """The check purpose, else the sha256 of the video sent, else of the images, else "no-video"."""
        if self.purpose:
            return self.purpose
        if self.videos:
            return hashlib.sha256(self.videos[0]).hexdigest()
        if self.images:
            return "frames:" + hashlib.sha256(b"".join(self.images)).hexdigest()
        return "no-video"

    def items(self) -> list[dict[str, Any]]:
        return [json.loads(line) for text in self.texts for line in text.splitlines() if line.startswith("{")]


class FakeOpenAI:
    def __init__(self, models: tuple[str, ...] = (MODEL,), api_key: str | None = API_KEY, flat_errors: bool = False):
        self.models_served = list(models)
        self.flat_errors = flat_errors  # errors as older vLLM releases and SGLang send them
        self.limit_mm_per_prompt: dict[str, int] = {}  # vllm serve --limit-mm-per-prompt '{"image": N, "video": M}'
        self.api_key = api_key
        self.default: Any = "ok"
        self.scripts: dict[str, list[Any]] = {}
        self.calls: Counter[str] = Counter()  # generate's chat requests per clip id (QA answers)
        self.checks: Counter[str] = Counter()  # verify's check requests by purpose
        self.models: Counter[str] = Counter()
        self.received: list[Received] = []
        self.blind_answers: dict[str, str] = {}
        self.judge_agrees: set[str] = set()
        self.support: dict[str, str] = {}
        self.answered = 0
        self._refuse_after: int | None = None  # after this many answers, the key is refused (revoked mid-run)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # --- configuration and counts -------------------------------------------------------------------
    def script(self, clip_id: str, *behaviours: Any) -> None:
        with self._lock:
            self.scripts[clip_id] = list(behaviours)

    def refuse_key_after(self, answers: int) -> None:
        """Answer `answers` requests, then refuse the key with 401 (a token that expired mid-run)."""
        self._refuse_after = answers

    def _behaviour(self, clip_id: str) -> Any:
        with self._lock:
            queue = self.scripts.get(clip_id)
            return queue.pop(0) if queue else self.default

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def all_calls(self) -> int:
        return self.total_calls + sum(self.checks.values())

    def qa_requests(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.purpose is None]

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.checks.clear()
            self.models.clear()
            self.received.clear()
            self.answered = 0

    # --- server --------------------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._route(self, "GET", b"")

            def do_POST(self) -> None:
                fake._route(self, "POST", self.rfile.read(int(self.headers.get("Content-Length", 0))))

        self._server = start_local_server(Handler)
        return self.base_url

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"{local_url(self._server)}/v1"

    def stop(self) -> None:
        self._stopping.set()
        stop_local_server(self._server)

    def _send(self, handler: BaseHTTPRequestHandler, code: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        send_body(handler, code, data)

    def _authorised(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.api_key is None:
            return True
        revoked = self._refuse_after is not None and self.answered >= self._refuse_after
        return not revoked and handler.headers.get("Authorization") == f"Bearer {self.api_key}"

    def _route(self, handler: BaseHTTPRequestHandler, method: str, raw: bytes) -> None:
        path = handler.path.split("?", 1)[0]
        if not self._authorised(handler):
            return self._send(handler, 401, {"error": "Unauthorized"})  # vLLM's answer to a wrong --api-key
        if method == "GET" and path == "/v1/models":
            return self._send(handler, 200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1764700000, "owned_by": "vllm", "root": m, "parent": None,
                 "max_model_len": 32768} for m in self.models_served]})
        if method == "POST" and path == "/v1/chat/completions":
            return self._chat(handler, raw)
        self._send(handler, 404, {"detail": "Not Found"})  # FastAPI's answer to an unknown route

    def _chat(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        try:
            received = Received(json.loads(raw))
        except (ValueError, KeyError, TypeError) as err:
            return self._send(handler, 400, vllm_error(400, f"invalid request: {err}", flat=self.flat_errors))
        if received.model not in self.models_served:
            return self._send(handler, 404, vllm_error(404, f"The model `{received.model}` does not exist.", "model",
                                                       self.flat_errors))
        for modality, items in (("image", received.images), ("video", received.videos)):
            limit = self.limit_mm_per_prompt.get(modality)
            if limit is not None and len(items) > limit:
                return self._send(handler, 400, vllm_error(400, f"At most {limit} {modality}(s) may be provided in "
                                                                f"one prompt.", flat=self.flat_errors))
        clip_id = received.clip_id
        with self._lock:
            (self.checks if received.purpose else self.calls)[received.purpose or clip_id] += 1
            self.models[received.model] += 1
            self.received.append(received)
        behaviour = self._behaviour(clip_id)
        if behaviour == "hang":
            self._stopping.wait(30)
            return self._send(handler, 503, vllm_error(503, flat=self.flat_errors))
        if behaviour == "drop":  # the connection closes with no answer (a server restarted, a proxy gave up)
            handler.close_connection = True
            return None
        if isinstance(behaviour, int):
            return self._send(handler, behaviour, vllm_error(behaviour, flat=self.flat_errors))
        with self._lock:
            self.answered += 1
        self._send(handler, 200, self._completion(received, behaviour))

    def _answer_text(self, received: Received) -> str:
        if received.purpose:
            return json.dumps(self._check_document(received))
        if received.schema is not None:  # prompt=evud_json: the seven items as JSON
            return json.dumps([{"category": c, "question": f"What does clip {received.clip_id[:8]} show ({c})?",
                                "answer": f"Answer {i} from {received.model}"} for i, c in enumerate(CATEGORIES)])
        return evud_answer(received.clip_id, received.model)

    def _check_document(self, received: Received) -> dict[str, Any]:
        items = received.items()
        if received.purpose == "blind":
            return {"answers": [{"id": i["id"], "answer": _named(self.blind_answers, i["question"]) or "",
                                 "cannot_tell": _named(self.blind_answers, i["question"]) is None} for i in items]}
        if received.purpose == "judge":
            return {"verdicts": [{"id": i["id"], "verdict": "agree" if _named(self.judge_agrees, i["question"])
                                  else "disagree"} for i in items]}
        return {"verdicts": [{"id": i["id"], "support": _named(self.support, i["question"]) or "supported"}
                             for i in items]}

    def _completion(self, received: Received, behaviour: Any) -> dict[str, Any]:
        text = self._answer_text(received)
        finish = "stop"
        budget = received.body.get("max_tokens")
        if behaviour == "length" or (budget is not None and len(text) // CHARS_PER_TOKEN > budget):
            text, finish = text[: min(len(text) // 2, (budget or 10**9) * CHARS_PER_TOKEN)], "length"
        elif behaviour == "content_filter":
            finish = "content_filter"
        elif behaviour == "empty":
            text = ""
        prompt_tokens = 300 + 1500 * len(received.videos) + 200 * len(received.images)
        completion_tokens = len(text) // CHARS_PER_TOKEN
        return {"id": f"chatcmpl-{self.answered}", "object": "chat.completion", "created": 1764700000,
                "model": received.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text or None, "refusal": None,
                                                     "tool_calls": [], "reasoning_content": None},
                             "logprobs": None, "finish_reason": finish, "stop_reason": None}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens, "prompt_tokens_details": None},
                "prompt_logprobs": None}


# Short waits so retries cost milliseconds; the request timeout stays seconds long (a loaded machine must not turn a
# plain answer into a timeout; the timeout test sets its own).
FAST_ENV = {"OPENAI_API_KEY": API_KEY, "EVUD_RETRY_INITIAL_S": "0.01", "EVUD_RETRY_MAX_S": "0.05",
            "EVUD_REQUEST_TIMEOUT_S": "10", "EVUD_RETRY_ATTEMPTS": "5", "EVUD_PROGRESS": "0"}



@lru_cache(maxsize=1)
def preset_gemini() -> GeminiParams:
    """conf/ composed with the open-model preset (`-S gemini=qwen_vl`), once per test process."""
    with tempfile.TemporaryDirectory() as tmp:
        composed = Path(tmp) / "params.yaml"
        compose_params(composed, PROJECT_ROOT / "conf", ["gemini=qwen_vl"])
        return load_section("gemini", composed)


def openai_params(fake: FakeOpenAI, **updates: Any) -> GeminiParams:
    """The open-model preset's gemini section pointed at the local server, updated."""
    return preset_gemini().model_copy(update={"base_url": fake.base_url, **updates})
