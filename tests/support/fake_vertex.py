"""A local stand-in for Vertex AI's REST API on 127.0.0.1, so the real google-genai code path runs in tests.

It answers what the SDK sends (paths from FIELD_NOTES):
  POST /v1beta1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent
  POST /v1beta1/projects/{p}/locations/{l}/batchPredictionJobs          (create)
  GET  /v1beta1/projects/{p}/locations/{l}/batchPredictionJobs/{id}     (poll)
  POST /v1beta1/projects/{p}/locations/{l}/batchPredictionJobs/{id}:cancel

A request is attributed to a clip id: the sha256 of its inline bytes, or the stem of its gs:// file URI (batch
mode uploads clips as `<sha256>.mp4`, so both name a clip by its content). What each clip gets is scripted:
a list of behaviours consumed one per request, then `default`. Behaviours: "ok", "blocked" (prompt blocked),
"safety" and "recitation" (finishReason), "truncated" (MAX_TOKENS), "empty", "no_candidates", "garbage" (a 200 that is not
JSON), "invalid_json" and "wrong_schema" (a check answered with text that is not the JSON asked for), "hang" (no answer for `hang_s`), or an HTTP status (429, 500, 503, ...). `error_rate` injects random
429/500/503 on top.

verify's check requests (a JSON schema of evud.verify.checks in generationConfig) are answered with JSON that
follows it, from the items in their prompt: the blind check answers the questions named in `blind_answers` (by a
substring of the question) and cannot tell the rest; the judge agrees on the questions in `judge_agrees`; the
grounding check says `support` (default: supported). They are counted apart, in `checks` by purpose, and scripted
by purpose (`script("blind", 429)`).

Batch jobs read their request file from GCS (the emulator, STORAGE_EMULATOR_HOST) on the second poll, apply
the same behaviours line by line (an HTTP status becomes a line with an error `status`, "hang" a missing
line, "malformed_line" a line cut short) and write `predictions.jsonl` under the job's output prefix, as Vertex does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import Any
from tests.support.local_http import local_url, send_body, start_local_server, stop_local_server

ERROR_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
                504: "DEADLINE_EXCEEDED", 408: "DEADLINE_EXCEEDED"}
_LOCATION = r"/(?:v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
GENERATE = re.compile(_LOCATION + r"/publishers/google/models/(?P<model>[^/:]+):generateContent$")
COUNT_TOKENS = re.compile(_LOCATION + r"/publishers/google/models/(?P<model>[^/:]+):countTokens$")
JOBS = re.compile(_LOCATION + r"/batchPredictionJobs$")
JOB = re.compile(_LOCATION + r"/batchPredictionJobs/(?P<id>\d+)$")
CANCEL = re.compile(_LOCATION + r"/batchPredictionJobs/(?P<id>\d+):cancel$")

CATEGORIES = ["object recognition", "attribute recognition", "object state recognition", "object localisation",
              "spatial reasoning", "functional reasoning", "world knowledge"]


def evud_answer(clip_id: str, model: str) -> str:
    """Seven well-formed QA blocks that name the clip and model, so answers differ per request."""
    return "\n\n".join(f"Category: {c}\nQuestion: What does clip {clip_id[:8]} show ({c}, {model})?\n"
                       f"Short answer: Answer {i} from {model}" for i, c in enumerate(CATEGORIES))


def _get(d: dict[str, Any], snake: str, camel: str) -> Any:
    return d.get(snake, d.get(camel))


def clip_id_of(body: dict[str, Any]) -> str:
    for content in body.get("contents", []):
        for part in content.get("parts", []):
            inline = _get(part, "inline_data", "inlineData")
            if inline:
                data = inline["data"]  # the SDK sends URL-safe base64 without padding
                return hashlib.sha256(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))).hexdigest()
            file_data = _get(part, "file_data", "fileData")
            if file_data:
                return PurePosixPath(_get(file_data, "file_uri", "fileUri")).stem
    return "no-video"


def answer_json(behaviour: Any, clip_id: str, model: str, thinking_tokens: int = 0,
                max_output_tokens: int | None = None) -> dict[str, Any]:
    """A generateContent response. A thinking model (thinking_tokens > 0) sends a thought part first and counts
    its tokens in thoughtsTokenCount; as on Gemini 3, max_output_tokens bounds thinking and answer together, so
    thinking that eats the budget ends the answer early with MAX_TOKENS."""
    if thinking_tokens and behaviour == "ok":
        return thinking_answer_json(clip_id, model, thinking_tokens, max_output_tokens)
    usage = {"promptTokenCount": 2000, "candidatesTokenCount": 150, "totalTokenCount": 2150}
    if behaviour == "blocked":
        return {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage, "modelVersion": model}
    if behaviour == "no_candidates":  # no answer and no reason given
        return {"usageMetadata": usage, "modelVersion": model}
    finish = {"safety": "SAFETY", "recitation": "RECITATION", "truncated": "MAX_TOKENS"}.get(behaviour, "STOP")
    text = evud_answer(clip_id, model)
    if behaviour == "truncated":
        text = text[: len(text) // 2]
    parts = [] if behaviour == "empty" else [{"text": text}]
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
            "usageMetadata": usage, "modelVersion": model}


CHARS_PER_TOKEN = 4


def thinking_answer_json(clip_id: str, model: str, thinking_tokens: int, max_output_tokens: int | None) -> dict[str, Any]:
    text = evud_answer(clip_id, model)
    answer_tokens = len(text) // CHARS_PER_TOKEN
    budget = max_output_tokens if max_output_tokens is not None else 65_536
    thought_tokens = min(thinking_tokens, budget)
    room = budget - thought_tokens
    finish = "STOP" if room >= answer_tokens else "MAX_TOKENS"
    text = text[: room * CHARS_PER_TOKEN]
    parts = [{"text": "Looking at the clip frame by frame...", "thought": True}] + ([{"text": text}] if text else [])
    said = len(text) // CHARS_PER_TOKEN
    usage = {"promptTokenCount": 2000, "candidatesTokenCount": said, "thoughtsTokenCount": thought_tokens,
             "totalTokenCount": 2000 + said + thought_tokens,
             "promptTokensDetails": [{"modality": "VIDEO", "tokenCount": 1400}, {"modality": "AUDIO", "tokenCount": 400},
                                     {"modality": "TEXT", "tokenCount": 200}]}
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish}],
            "usageMetadata": usage, "modelVersion": model}


def check_purpose(body: dict[str, Any]) -> str | None:
    """blind / judge / ground for one of verify's check requests (by the answer schema it asks for), else None."""
    config = body.get("generationConfig") or body.get("generation_config") or {}
    schema = config.get("responseJsonSchema") or config.get("response_json_schema") or {}
    properties = schema.get("properties") or {}
    if "answers" in properties:
        return "blind"
    item = ((properties.get("verdicts") or {}).get("items") or {}).get("properties") or {}
    return "judge" if "verdict" in item else "ground" if "support" in item else None


def prompt_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The items a check prompt lists, one JSON object per line."""
    items = []
    for content in body.get("contents", []):
        for part in content.get("parts", []):
            for line in (part.get("text") or "").splitlines():
                if line.startswith("{"):
                    items.append(json.loads(line))
    return items


def _named(table: dict[str, Any] | set[str], question: str) -> Any:
    return next((table[k] if isinstance(table, dict) else True for k in table if k in question), None)


def check_answer_json(purpose: str, items: list[dict[str, Any]], model: str, blind_answers: dict[str, str],
                      judge_agrees: set[str], support: dict[str, str]) -> dict[str, Any]:
    if purpose == "blind":
        answers = [{"id": i["id"], "answer": _named(blind_answers, i["question"]) or "",
                    "cannot_tell": _named(blind_answers, i["question"]) is None} for i in items]
        document: dict[str, Any] = {"answers": answers}
    elif purpose == "judge":
        document = {"verdicts": [{"id": i["id"], "verdict": "agree" if _named(judge_agrees, i["question"]) else "disagree"}
                                 for i in items]}
    else:
        document = {"verdicts": [{"id": i["id"], "support": _named(support, i["question"]) or "supported"}
                                 for i in items]}
    usage = {"promptTokenCount": 300 if purpose != "ground" else 2300, "candidatesTokenCount": 100,
             "totalTokenCount": 400 if purpose != "ground" else 2400}
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": json.dumps(document)}]},
                            "finishReason": "STOP"}], "usageMetadata": usage, "modelVersion": model}


# A check answered with text that is not the JSON its schema asks for (Gemini does not always follow it).
UNREADABLE_CHECKS = {"invalid_json": '{"answers": [{"id": 1, "answer": "a pan"', "wrong_schema": '{"items": []}'}


def error_json(code: int, message: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message or f"injected {code}", "status": ERROR_STATUS.get(code, "UNKNOWN")}}


class FakeVertex:
    def __init__(self, latency_s: float = 0.0, error_rate: float = 0.0, seed: int = 0, hang_s: float = 30.0,
                 keep_bodies: bool = True):
        self.latency_s = latency_s
        self.keep_bodies = keep_bodies  # False in benchmarks: a body holds its inline clip (megabytes each)
        self.error_rate = error_rate
        self.hang_s = hang_s
        self.default: Any = "ok"
        self.scripts: dict[str, list[Any]] = {}
        self.calls: Counter[str] = Counter()  # generateContent requests per clip id (generate's: QA answers)
        self.checks: Counter[str] = Counter()  # verify's check requests (online and batch lines) by purpose
        self.blind_answers: dict[str, str] = {}  # question substring -> what the blind check answers
        self.judge_agrees: set[str] = set()  # question substrings whose two answers the judge says agree
        self.support: dict[str, str] = {}  # question substring -> the grounding check's word (default supported)
        self.models: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.batch_lines: Counter[str] = Counter()  # batch request lines processed per clip id
        self.jobs: dict[str, dict[str, Any]] = {}
        self.jobs_created = 0
        self.failing_jobs = 0  # the next N jobs end JOB_STATE_FAILED without output
        self.create_errors: list[int] = []  # HTTP statuses answered to the next job creations, one each
        self.poll_errors: list[int] = []  # HTTP statuses answered to the next polls of a job, one each
        self.job_requests: list[int] = []  # request lines of each job run, in the order they ran
        self.job_input_bytes: list[int] = []  # bytes of each job's request file, in the order they ran
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.answered = 0  # 200 answers sent (each one paid for)
        self.thinking_tokens = 0  # > 0: answer as a thinking model does
        self.served: dict[str, set[str]] = {}  # model -> the only locations that serve it (unlisted: everywhere)
        self.denied_projects: set[str] = set()  # projects whose credentials lack permission
        self.targets: Counter[tuple[str, str, str]] = Counter()  # (method, model, location) of every model request
        self._hold_after: int | None = None  # after this many answers, requests hang until release()
        self._refuse_after: int | None = None  # after this many answers, every generateContent gets a 401
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # --- configuration and counts -------------------------------------------------------------------
    def script(self, clip_id: str, *behaviours: Any) -> None:
        with self._lock:
            self.scripts[clip_id] = list(behaviours)

    def next_behaviour(self, clip_id: str) -> Any:
        with self._lock:
            queue = self.scripts.get(clip_id)
            if queue:
                return queue.pop(0)
            if self.error_rate and self._rng.random() < self.error_rate:
                return self._rng.choice([429, 500, 503])
            return self.default

    def hold_after(self, answers: int) -> None:
        """Answer `answers` requests, then hold every further one (a run that is killed mid-flight)."""
        self._hold_after = answers
        self._released.clear()

    def refuse_credentials_after(self, answers: int | None) -> None:
        """Answer `answers` requests, then refuse every further one with 401 UNAUTHENTICATED (a token that expired
        mid-run, after the preflight passed); None: accept them again (the token was refreshed)."""
        self._refuse_after = answers

    def release(self) -> None:
        self._hold_after = None
        self._released.set()

    @property
    def total_calls(self) -> int:
        """generate's requests (QA answers) received."""
        return sum(self.calls.values())

    @property
    def qa_bodies(self) -> list[dict[str, Any]]:
        """The bodies of generate's requests (QA answers), without verify's checks."""
        with self._lock:
            return [b for b in self.bodies if check_purpose(b) is None]

    @property
    def all_calls(self) -> int:
        """Every answer request received, generate's and verify's, online or as batch lines: what was paid for."""
        return self.total_calls + sum(self.checks.values()) + sum(self.batch_lines.values())

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.checks.clear()
            self.models.clear()
            self.bodies.clear()
            self.batch_lines.clear()
            self.targets.clear()
            self.answered = 0

    # --- server --------------------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake._route(self, "POST", body)

            def do_GET(self) -> None:
                fake._route(self, "GET", {})

        self._server = start_local_server(Handler)
        return self.base_url

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return local_url(self._server)

    def stop(self) -> None:
        self._stopping.set()
        stop_local_server(self._server)

    def _send(self, handler: BaseHTTPRequestHandler, code: int, payload: dict[str, Any]) -> None:
        self._send_raw(handler, code, json.dumps(payload).encode())

    def _send_raw(self, handler: BaseHTTPRequestHandler, code: int, data: bytes) -> None:
        send_body(handler, code, data)

    def _refusal(self, project: str, location: str, model: str) -> tuple[int, dict[str, Any]] | None:
        """Vertex's answer when the project may not call the model there, or the location does not serve it."""
        if project in self.denied_projects:
            return 403, error_json(403, f"Permission 'aiplatform.endpoints.predict' denied on resource "
                                        f"'//aiplatform.googleapis.com/projects/{project}/locations/{location}/"
                                        f"publishers/google/models/{model}' (or it may not exist).")
        if model in self.served and location not in self.served[model]:
            return 404, error_json(404, f"Publisher Model `projects/{project}/locations/{location}/publishers/google/"
                                        f"models/{model}` was not found or your project does not have access to it. "
                                        "Please ensure you are using a valid model version.")
        return None

    def _route(self, handler: BaseHTTPRequestHandler, method: str, body: dict[str, Any]) -> None:
        path = handler.path.split("?", 1)[0]
        model_call = GENERATE.match(path) or COUNT_TOKENS.match(path)
        if method == "POST" and model_call:
            with self._lock:
                self.targets[(path.rsplit(":", 1)[1], model_call["model"], model_call["location"])] += 1
            refusal = self._refusal(model_call["project"], model_call["location"], model_call["model"])
            if refusal is not None:
                return self._send(handler, *refusal)
        if method == "POST" and (m := COUNT_TOKENS.match(path)):
            return self._send(handler, 200, {"totalTokens": 1})  # free on Vertex
        if method == "POST" and (m := GENERATE.match(path)):
            return self._generate(handler, m["model"], body)
        if method == "POST" and (m := JOBS.match(path)):
            if (code := self._scripted_error(self.create_errors)) is not None:
                return self._send(handler, code, error_json(code, f"injected job creation failure {code}"))
            return self._send(handler, 200, self._create_job(m["project"], m["location"], body))
        if method == "GET" and (m := JOB.match(path)) and m["id"] in self.jobs:
            if (code := self._scripted_error(self.poll_errors)) is not None:
                return self._send(handler, code, error_json(code, f"injected poll failure {code}"))
            return self._send(handler, 200, self._poll_job(m["id"]))
        if method == "POST" and (m := CANCEL.match(path)) and m["id"] in self.jobs:
            self.jobs[m["id"]]["state"] = "JOB_STATE_CANCELLED"
            return self._send(handler, 200, {})
        self._send(handler, 404, error_json(404))

    def _scripted_error(self, queue: list[int]) -> int | None:
        with self._lock:
            return queue.pop(0) if queue else None

    # --- online --------------------------------------------------------------------------------------
    def _generate(self, handler: BaseHTTPRequestHandler, model: str, body: dict[str, Any]) -> None:
        purpose = check_purpose(body)
        clip_id = purpose or clip_id_of(body)  # a check is scripted by its purpose
        with self._lock:
            if purpose:
                self.checks[purpose] += 1
            else:
                self.calls[clip_id] += 1
            self.models[model] += 1
            if self.keep_bodies:
                self.bodies.append(body)
        with self._lock:
            refused = self._refuse_after is not None and self.answered >= self._refuse_after
        if refused:
            return self._send(handler, 401, error_json(401, "Request had invalid authentication credentials. "
                                                            "Expected OAuth 2 access token."))
        with self._lock:
            held = self._hold_after is not None and self.answered >= self._hold_after
            if not held:
                self.answered += 1
        if held:
            self._released.wait(60)
            return self._send(handler, 503, error_json(503))
        behaviour = self.next_behaviour(clip_id)
        if behaviour == "hang":
            self._stopping.wait(self.hang_s)
            return self._send(handler, 504, error_json(504))
        if self.latency_s:
            time.sleep(self.latency_s)
        if isinstance(behaviour, int):
            return self._send(handler, behaviour, error_json(behaviour))
        if behaviour == "garbage":
            return self._send_raw(handler, 200, b"<html>proxy error</html>")
        self._send(handler, 200, self._answer(behaviour, body, purpose, clip_id, model))

    def _answer(self, behaviour: Any, body: dict[str, Any], purpose: str | None, clip_id: str,
                model: str) -> dict[str, Any]:
        if purpose and behaviour == "ok":
            return check_answer_json(purpose, prompt_items(body), model, self.blind_answers, self.judge_agrees,
                                     self.support)
        if purpose and behaviour in UNREADABLE_CHECKS:
            return {"candidates": [{"content": {"role": "model", "parts": [{"text": UNREADABLE_CHECKS[behaviour]}]},
                                    "finishReason": "STOP"}],
                    "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 20, "totalTokenCount": 320},
                    "modelVersion": model}
        config = body.get("generationConfig") or {}
        return answer_json(behaviour, clip_id, model, self.thinking_tokens, config.get("maxOutputTokens"))

    # --- batch ---------------------------------------------------------------------------------------
    def _create_job(self, project: str, location: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.jobs_created += 1
            job_id = str(1000 + self.jobs_created)
        self.jobs[job_id] = {
            "name": f"projects/{project}/locations/{location}/batchPredictionJobs/{job_id}",
            "displayName": body.get("displayName"), "model": body["model"], "state": "JOB_STATE_PENDING",
            "inputConfig": body["inputConfig"], "outputConfig": body["outputConfig"], "polls": 0,
            "createTime": "2026-11-26T00:00:00Z",
        }
        return self._job_json(job_id)

    def _job_json(self, job_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.jobs[job_id].items() if k != "polls"}

    def _poll_job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs[job_id]
        job["polls"] += 1
        if job["state"] == "JOB_STATE_PENDING":
            job["state"] = "JOB_STATE_RUNNING"
        elif job["state"] == "JOB_STATE_RUNNING" and job["polls"] >= 2:
            if self.failing_jobs:
                self.failing_jobs -= 1
                job.update(state="JOB_STATE_FAILED", error={"code": 13, "message": "injected job failure"})
            else:
                self._run_job(job)
        return self._job_json(job_id)

    def _run_job(self, job: dict[str, Any]) -> None:
        model = job["model"].rsplit("/", 1)[-1]
        files = [gcs_read(uri) for uri in job["inputConfig"]["gcsSource"]["uris"]]
        lines_in = [json.loads(line) for text in files for line in text.splitlines() if line.strip()]
        with self._lock:
            self.job_requests.append(len(lines_in))
            self.job_input_bytes.append(sum(len(text.encode()) for text in files))
        lines_out, ok, failed = [], 0, 0
        for line in lines_in:
            purpose = check_purpose(line["request"])
            clip_id = purpose or clip_id_of(line["request"])
            with self._lock:
                self.batch_lines[clip_id] += 1
            behaviour = self.next_behaviour(clip_id)
            if behaviour == "hang":
                continue  # the row never made it into the output
            out = {"request": line["request"], "processed_time": "2026-11-26T00:01:00Z"}
            if isinstance(behaviour, int):
                out["status"] = f"Error {behaviour}: injected failure"
                failed += 1
            elif behaviour == "newer_fields":  # fields a newer Vertex sends that this SDK does not model
                response = answer_json("ok", clip_id, model)
                response["candidates"][0]["score"] = -0.42  # Candidate.score: in Vertex's v1 content.proto
                response["servingTier"] = {"name": "batch"}
                out["status"], out["response"] = "", response
                ok += 1
            elif behaviour == "malformed_line":  # a line cut short: not JSON at all (its request's label is in it)
                out["status"] = ""
                out["response"] = self._answer("ok", line["request"], purpose, clip_id, model)
                lines_out.append(json.dumps(out)[:-40])
                ok += 1
                continue
            elif behaviour == "unreadable_row":  # a response no SDK can read (a candidate that is not an object)
                out["status"], out["response"] = "", {"candidates": ["not a candidate"], "modelVersion": model}
                ok += 1
            else:
                out["status"] = ""
                out["response"] = self._answer(behaviour, line["request"], purpose, clip_id, model)
                ok += 1
            lines_out.append(json.dumps(out))
        directory = job["outputConfig"]["gcsDestination"]["outputUriPrefix"].rstrip("/") + \
            f"/prediction-model-{len(self.jobs)}"
        gcs_write(directory + "/predictions.jsonl", "\n".join(lines_out) + "\n")
        job.update(state="JOB_STATE_SUCCEEDED", outputInfo={"gcsOutputDirectory": directory},
                   completionStats={"successfulCount": str(ok), "failedCount": str(failed),
                                    "incompleteCount": str(len(lines_in) - ok - failed)})


def _bucket_and_name(uri: str) -> tuple[str, str]:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    return bucket, name


def _storage_client() -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials())


def gcs_read(uri: str) -> str:
    bucket, name = _bucket_and_name(uri)
    return _storage_client().bucket(bucket).blob(name).download_as_text()


def gcs_write(uri: str, text: str) -> None:
    bucket, name = _bucket_and_name(uri)
    _storage_client().bucket(bucket).blob(name).upload_from_string(text, content_type="application/jsonl")


BATCH_BUCKET = "evud-batch-test"

# Short waits so retries and polling cost milliseconds in tests; a static token so no ADC lookup. The request
# timeout stays seconds long: a loaded CI machine must not turn a plain answer into a timeout (the test of
# timeouts sets its own).
FAST_ENV = {"GOOGLE_OAUTH_ACCESS_TOKEN": "test-token", "NO_GCE_CHECK": "true", "EVUD_RETRY_INITIAL_S": "0.01",
            "EVUD_RETRY_MAX_S": "0.05", "EVUD_REQUEST_TIMEOUT_S": "10", "EVUD_RETRY_ATTEMPTS": "5",
            "EVUD_BATCH_POLL_S": "0.05", "EVUD_PROGRESS": "0"}
