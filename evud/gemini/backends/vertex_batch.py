"""Batch mode (`gemini.mode=batch`) of the vertex backend: Vertex AI batch prediction jobs, at half price.

    requests.jsonl ({"request": {...}} lines, clips as gs:// fileData; one file per job, split under Vertex's per-job
    limits) -> gs://<batch_bucket>/<batch_prefix>/jobs/<run>/
    client.batches.create -> job name, logged at once in the answer store (batch-jobs/)
    poll until done -> read predictions.jsonl back -> map each line to its request key (a label we set)
    -> answers into the answer store -> re-submit only the failed or missing requests (EVUD_BATCH_ROUNDS)

The job log lives in the answer store (outside every DVC out), so a re-run after a crash or Ctrl-C, in the
workspace or in any experiment, resumes polling the job it submitted instead of paying for it twice.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from google.genai import errors, types
from pydantic import ValidationError

from evud.core.checksums import file_digests
from evud.core.errors import UserError
from evud.core.gcs import UploadError, upload_clip
from evud.core.params import GeminiParams, runtime_float, runtime_int
from evud.core.progress import progress_bar
from evud.core.records import AnswerEntry
from evud.gemini.answer_store import AnswerStore
from evud.gemini.backend import BatchOutcome, failed_entry, response_entry
from evud.gemini.backends.vertex_requests import (
    describe_error,
    generation_settings,
    is_transient,
    request_contents,
    sent_video_metadata,
)
from evud.gemini.request import GeminiRequest

JOBS_DIR = "batch-jobs"
JOB_GONE = "JOB_NOT_FOUND"  # what the job log records for a job Vertex no longer knows
LABEL = "evud_request"  # label on each request line; Vertex echoes the request into its prediction line
LABEL_CHARS = 32  # label values are at most 63 characters; 128 bits of the request key are plenty
# Vertex's limits per batch job (batch prediction docs, 2026-12): a run over them is split into several jobs.
MAX_JOB_REQUESTS = 200_000
MAX_JOB_INPUT_BYTES = 1_000_000_000  # 1 GB of requests.jsonl (decimal: under the limit whichever GB is meant)


class BatchSetupError(UserError):
    """Batch mode cannot start with these params (no bucket, a bucket that does not exist or may not be used)."""


class BatchJobError(UserError):
    """Vertex refused to create or report a batch job; answers collected so far are kept, a logged job is resumed."""


# --- request lines ---------------------------------------------------------------------------------


def request_label(key: str) -> str:
    return key[:LABEL_CHARS]


def clip_object_uri(gemini: GeminiParams, sha256: str) -> str:
    """Content-addressed: a clip is uploaded once, whatever its name, and re-runs find it there."""
    return f"gs://{gemini.batch_bucket}/{gemini.batch_prefix}/clips/{sha256}.mp4"


# Settings of GenerateContentConfig that a batch request line carries beside its generationConfig.
_REQUEST_FIELDS = {"system_instruction": ("systemInstruction", types.Content),
                   "safety_settings": ("safetySettings", None)}


def batch_settings_problem(generation: dict[str, Any]) -> str | None:
    """Why these generation settings cannot go into a batch request line, or None."""
    unsupported = sorted(set(generation) - set(types.GenerationConfig.model_fields) - set(_REQUEST_FIELDS))
    if not unsupported:
        return None
    return (f"gemini.generation.{unsupported[0]} cannot be sent in batch mode (a batch request carries "
            "generationConfig fields, system_instruction and safety_settings): use gemini.mode=online")


def request_line(request: GeminiRequest, file_uri: str | None) -> dict[str, Any]:
    """One `{"request": ...}` line in Vertex's REST JSON (camelCase), built from the same parts as online."""
    video = types.Part(file_data=types.FileData(file_uri=file_uri, mime_type="video/mp4"),
                       video_metadata=sent_video_metadata(request)) if request.video and file_uri else None
    settings = generation_settings(request)
    body: dict[str, Any] = {
        "contents": [c.model_dump(mode="json", by_alias=True, exclude_none=True)
                     for c in request_contents(request, video)],
        "labels": {LABEL: request_label(request.key)}}
    for name, (rest_name, model) in _REQUEST_FIELDS.items():
        if name in settings:
            value = settings.pop(name)
            if model is types.Content and isinstance(value, str):
                value = types.Content(role="user", parts=[types.Part(text=value)])
            body[rest_name] = value.model_dump(mode="json", by_alias=True, exclude_none=True) \
                if isinstance(value, types.Content) else value
    body["generationConfig"] = types.GenerationConfig(**settings).model_dump(mode="json", by_alias=True,
                                                                             exclude_none=True)
    return {"request": body}


# --- Cloud Storage ---------------------------------------------------------------------------------


def storage_client(gemini: GeminiParams, credentials: Any) -> Any:
    from google.cloud import storage  # imported lazily: only batch mode needs it

    return storage.Client(project=gemini.project, credentials=credentials)


def split_uri(uri: str) -> tuple[str, str]:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    return bucket, name


def upload_missing_clips(requests: list[GeminiRequest], gemini: GeminiParams, clips_dir: Path, storage: Any,
                         concurrency: int) -> tuple[dict[str, str], dict[str, str]]:
    """(request key -> gs:// URI of its clip, request key -> why its clip could not be uploaded); clips prepare did
    not upload go up once, by content, with the same uploader as prepare's (generation precondition, MD5 verified)."""
    requests = [r for r in requests if r.video]  # text-only requests (verify's checks) have no clip to send
    uris = {r.key: r.clip.clip_uri or clip_object_uri(gemini, r.clip.sha256 or "") for r in requests}
    to_upload = {r.clip.sha256: r for r in requests if not r.clip.clip_uri}

    def upload(request: GeminiRequest) -> str | None:
        local = clips_dir / (request.clip.clip_path or "")
        bucket, name = split_uri(clip_object_uri(gemini, request.clip.sha256 or ""))
        try:
            upload_clip(bucket, name, str(local), file_digests(local)[1] or "", client=storage)
        except (UploadError, OSError) as err:
            return str(err)
        return None

    failed_by_sha: dict[str | None, str] = {}
    if to_upload:
        print(f"batch: uploading {len(to_upload)} clip(s) without a gs:// copy to "
              f"gs://{gemini.batch_bucket}/{gemini.batch_prefix}/clips/", file=sys.stderr)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            problems = dict(zip(to_upload, pool.map(upload, to_upload.values())))
        failed_by_sha = {sha: why for sha, why in problems.items() if why}
    failures = {r.key: failed_by_sha[r.clip.sha256] for r in requests
                if not r.clip.clip_uri and r.clip.sha256 in failed_by_sha}
    return {k: v for k, v in uris.items() if k not in failures}, failures


def bucket_problem(gemini: GeminiParams, err: Exception) -> str:
    """What a refusal of gemini.batch_bucket means, and what to change."""
    from google.api_core import exceptions as gexc

    name = f"gemini.batch_bucket={gemini.batch_bucket}"
    said = f"(Cloud Storage: {getattr(err, 'code', '?')} {getattr(err, 'message', err)})"
    if isinstance(err, gexc.NotFound):
        return (f"{name} does not exist {said}: create it (`gcloud storage buckets create gs://{gemini.batch_bucket} "
                f"--location=LOCATION`) or name an existing bucket")
    if isinstance(err, (gexc.Forbidden, gexc.Unauthorized)):
        return (f"{name}: these credentials may not use it {said}: give them roles/storage.objectAdmin on the bucket "
                "(`gcloud storage buckets add-iam-policy-binding`) or name a bucket they may use")
    return f"{name} cannot be used {said}: check the bucket and the network, then run again"


def check_bucket(gemini: GeminiParams, storage: Any) -> None:
    """Before any upload or job: the bucket exists and these credentials may list it (predictions are read back by
    listing), so a setup mistake is one line instead of a failed upload per clip."""
    from google.api_core import exceptions as gexc

    try:
        next(iter(storage.list_blobs(gemini.batch_bucket, prefix=f"{gemini.batch_prefix}/", max_results=1)), None)
    except gexc.GoogleAPIError as err:
        raise BatchSetupError(bucket_problem(gemini, err)) from None


@dataclass(frozen=True)
class MalformedLine:
    """A prediction line that is not a JSON object: where it is, why, and the request it names (if one can be told)."""

    where: str
    error: str
    key: str | None


def parse_prediction_line(text: str) -> dict[str, Any] | None:
    """A line as a JSON object, or None when it is not one."""
    try:
        line = json.loads(text)
    except ValueError:
        return None
    return line if isinstance(line, dict) and isinstance(line.get("request", {}), dict) else None


def malformed_line(text: str, where: str, record: dict[str, Any]) -> MalformedLine:
    """The request of a line that cannot be parsed, by the label it still holds (a label is 32 hex digits of a request
    key: one found in the text names its request)."""
    try:
        json.loads(text)
        error = "not a prediction object"
    except ValueError as err:
        error = str(err)
    key = next((key for label, key in record["labels"].items() if label in text), None)
    return MalformedLine(where, error, key)


def read_prediction_lines(storage: Any, directory_uri: str,
                          record: dict[str, Any]) -> tuple[list[dict[str, Any]], list[MalformedLine]]:
    """Every line of every .jsonl file the job wrote under its output directory, and those that are not JSON objects
    (each a failure of its request, never of the job: the other answers are paid for)."""
    bucket, prefix = split_uri(directory_uri.rstrip("/") + "/")
    lines, malformed = [], []
    for blob in storage.list_blobs(bucket, prefix=prefix):
        if not blob.name.endswith(".jsonl"):
            continue
        for number, text in enumerate(blob.download_as_text().splitlines(), start=1):
            if not text.strip():
                continue
            line = parse_prediction_line(text)
            if line is None:
                malformed.append(malformed_line(text, f"line {number} of gs://{bucket}/{blob.name}", record))
            else:
                lines.append(line)
    return lines, malformed


# --- the job log -----------------------------------------------------------------------------------


class BatchJobLog:
    """One record per submitted job in the answer store (`batch-jobs/`), marked once its answers are collected."""

    def __init__(self, store: AnswerStore):
        self.store = store
        self.fs = store.fs
        self.root = f"{store.root}/{JOBS_DIR}"

    def _path(self, job: str) -> str:
        return f"{self.root}/{hashlib.sha256(job.encode()).hexdigest()[:32]}.json"

    def _write(self, record: dict[str, Any]) -> None:
        self.store.write_object(self._path(record["job"]), json.dumps(record, sort_keys=True).encode())

    def submitted(self, record: dict[str, Any]) -> None:
        self._write({**record, "collected": None})

    def collected(self, record: dict[str, Any], state: str) -> None:
        self._write({**record, "collected": state})

    def unfinished(self) -> list[dict[str, Any]]:
        """Jobs submitted but never collected: a re-run polls them instead of submitting again."""
        try:
            paths = sorted(self.fs.find(self.root))
        except FileNotFoundError:
            return []
        records = [json.loads(self.fs.cat_file(path)) for path in paths if path.endswith(".json")]
        return sorted((r for r in records if r.get("collected") is None), key=lambda r: r["job"])


# --- running jobs ----------------------------------------------------------------------------------


def split_jobs(requests: list[GeminiRequest], lines: dict[str, bytes]) -> list[list[GeminiRequest]]:
    """The requests in order, cut into jobs of at most MAX_JOB_REQUESTS requests and MAX_JOB_INPUT_BYTES bytes of
    request lines each (a single line over the byte limit goes alone: Vertex then says what is wrong with it)."""
    jobs: list[list[GeminiRequest]] = []
    size = 0
    for request in requests:
        line_bytes = len(lines[request.key])
        if not jobs or len(jobs[-1]) >= MAX_JOB_REQUESTS or size + line_bytes > MAX_JOB_INPUT_BYTES:
            jobs.append([])
            size = 0
        jobs[-1].append(request)
        size += line_bytes
    return jobs


def submit_job(requests: list[GeminiRequest], lines: dict[str, bytes], gemini: GeminiParams, client: Any,
               storage: Any, uris: dict[str, str], log: BatchJobLog) -> dict[str, Any]:
    """Upload the requests' lines and create their job, logged at once (a crash from here on resumes it)."""
    from google.api_core import exceptions as gexc

    digest = hashlib.sha256("".join(sorted(r.key for r in requests)).encode()).hexdigest()[:12]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_uri = f"gs://{gemini.batch_bucket}/{gemini.batch_prefix}/jobs/{stamp}-{digest}"
    bucket, name = split_uri(f"{run_uri}/requests.jsonl")
    body = b"".join(lines[r.key] for r in requests)
    try:
        storage.bucket(bucket).blob(name).upload_from_string(body, content_type="application/jsonl")
    except gexc.GoogleAPIError as err:
        raise BatchSetupError(bucket_problem(gemini, err)) from None
    try:
        job = client.batches.create(
            model=gemini.model, src=f"{run_uri}/requests.jsonl",
            config=types.CreateBatchJobConfig(display_name=f"evud-{stamp}-{digest}", dest=f"{run_uri}/predictions"))
    except errors.APIError as err:
        raise BatchJobError(creation_problem(gemini, err, run_uri)) from None
    record = {"job": job.name, "model": gemini.model, "input": f"{run_uri}/requests.jsonl",
              "dest": f"{run_uri}/predictions", "labels": {request_label(r.key): r.key for r in requests},
              "uris": {uris[r.key]: r.key for r in requests if r.key in uris}}
    log.submitted(record)
    print(f"batch: submitted {job.name} with {len(requests)} request(s); output under {record['dest']}",
          file=sys.stderr)
    return record


def creation_problem(gemini: GeminiParams, err: errors.APIError, run_uri: str) -> str:
    """What a refused job creation means, and what to change."""
    said = f"(Vertex: {err.code} {err.status}: {err.message})"
    head = f"batch: Vertex could not create a batch job for {run_uri}/requests.jsonl {said}"
    if is_transient(err):
        return f"{head}: Vertex is busy or failed for a moment; run again (answers collected so far are kept)"
    if err.code in (401, 403):
        return (f"{head}: give Vertex AI's service agent (service-PROJECT_NUMBER@gcp-sa-aiplatform.iam."
                f"gserviceaccount.com) roles/storage.objectAdmin on gs://{gemini.batch_bucket} and these credentials "
                f"roles/aiplatform.user on project {gemini.project}, then run again")
    return (f"{head}: check that model {gemini.model} runs batch jobs in location {gemini.location} and that "
            f"gs://{gemini.batch_bucket} is in a region Vertex reads from, then run again")


class JobGone(Exception):
    """The job is not found (deleted, or expired from Vertex's list): its requests were never answered to us."""


def poll_problem(name: str, err: errors.APIError) -> str:
    return (f"batch: polling {name} was refused (Vertex: {err.code} {err.status}: {err.message}): check that these "
            "credentials may read the project's batch jobs (roles/aiplatform.user) or refresh them, then run again: "
            "the job stays logged and the next run resumes it without paying again")


def wait_for_job(client: Any, name: str, total: int) -> types.BatchJob:
    """Poll until the job ends, showing rows done, failures so far and the job state."""
    poll_s = runtime_float("EVUD_BATCH_POLL_S", 30.0)
    bar = progress_bar(total, f"batch {name.rsplit('/', 1)[-1]}")
    try:
        while True:
            try:
                job = client.batches.get(name=name)
            except errors.APIError as err:
                if err.code == 404:
                    raise JobGone(describe_error(err)) from None
                if not is_transient(err):
                    raise BatchJobError(poll_problem(name, err)) from None
                print(f"batch: polling {name}: {describe_error(err)}; trying again", file=sys.stderr)
            else:
                stats = job.completion_stats or types.CompletionStats()
                bar.n = min((stats.successful_count or 0) + (stats.failed_count or 0), total)
                bar.set_postfix(state=str(job.state.value if job.state else "?").removeprefix("JOB_STATE_"),
                                failed=stats.failed_count or 0)
                if job.done:
                    return job
            time.sleep(poll_s)
    finally:
        bar.close()


def line_key(line: dict[str, Any], record: dict[str, Any]) -> str | None:
    """The request key of a prediction line: by our label, else by its clip's URI (unique within one job,
    whose requests share model, prompt and config; a text-only request is found by its label only)."""
    request = line.get("request") or {}
    key = record["labels"].get((request.get("labels") or {}).get(LABEL, ""))
    if key is not None:
        return key
    for content in request.get("contents", []):
        for part in content.get("parts", []):
            file_data = part.get("fileData") or part.get("file_data") or {}
            uri = file_data.get("fileUri") or file_data.get("file_uri")
            if uri in record.get("uris", {}):
                return record["uris"][uri]
    return None


def read_prediction(response: dict[str, Any]) -> types.GenerateContentResponse:
    """A prediction line's response, read the way the SDK reads its own responses: fields a newer Vertex sends that
    this SDK does not model yet are dropped (its models forbid unknown fields), the rest is checked."""
    return types.GenerateContentResponse._from_response(response=copy.deepcopy(response), kwargs={})


def prediction_entries(lines: list[dict[str, Any]], record: dict[str, Any], job: types.BatchJob,
                       malformed: Sequence[MalformedLine] = ()) -> dict[str, AnswerEntry]:
    """Entries for every request of a job: its answer, its error, or `batch_missing`."""
    labels: dict[str, str] = record["labels"]
    model, name = record["model"], record["job"]
    answered_at = job.end_time or datetime.now(timezone.utc)  # what the answers are priced at
    entries: dict[str, AnswerEntry] = {}
    for bad in malformed:
        if bad.key is not None:
            entries[bad.key] = failed_entry(bad.key, model, "vertex", f"malformed_prediction: {bad.where}: {bad.error}",
                                            retryable=True, batch_job=name)
    for line in lines:
        key = line_key(line, record)
        if key is None:
            continue  # not one of ours (another job's output under the same prefix)
        if line.get("response") and not line.get("status"):
            try:
                response = read_prediction(line["response"])
            except (ValidationError, TypeError, ValueError, AttributeError) as err:  # the row's failure, not the job's
                entries[key] = failed_entry(key, model, "vertex", f"unreadable_prediction: {err}".splitlines()[0],
                                            retryable=True, batch_job=name)
                continue
            entries[key] = response_entry(key, model, "vertex", response, batch_job=name, answered_at=answered_at)
        elif key not in entries:
            entries[key] = failed_entry(key, model, "vertex", f"batch_error: {line.get('status') or 'no response'}",
                                        retryable=True, batch_job=name)
    state = job.state.value if job.state else "JOB_STATE_UNSPECIFIED"
    for key in labels.values():
        if key not in entries:
            why = "no prediction for this request" if state == "JOB_STATE_SUCCEEDED" else \
                f"job ended {state}: {job.error.message if job.error else 'no error message'}"
            entries[key] = failed_entry(key, model, "vertex", f"batch_missing: {name}: {why}", retryable=True,
                                        batch_job=name)
    return entries


def gone_entries(record: dict[str, Any], why: str) -> list[AnswerEntry]:
    return [failed_entry(key, record["model"], "vertex", f"batch_missing: {record['job']}: job not found ({why})",
                         retryable=True, batch_job=record["job"]) for key in record["labels"].values()]


def finish_job(record: dict[str, Any], client: Any, storage: Any, store: AnswerStore,
               log: BatchJobLog) -> list[AnswerEntry]:
    try:
        job = wait_for_job(client, record["job"], len(record["labels"]))
    except JobGone as gone:
        log.collected(record, JOB_GONE)  # never polled again: its requests are asked again like missing rows
        print(f"batch: {record['job']} is not found ({gone}); its {len(record['labels'])} request(s) are asked again",
              file=sys.stderr)
        return gone_entries(record, str(gone))
    directory = (job.output_info and job.output_info.gcs_output_directory) or record["dest"]
    lines, malformed = read_prediction_lines(storage, directory, record)
    for bad in malformed:
        print(f"batch: {bad.where} is not a prediction ({bad.error}); "
              f"{'its request is asked again' if bad.key else 'no request named in it'}", file=sys.stderr)
    entries = list(prediction_entries(lines, record, job, malformed).values())
    for entry in entries:
        if entry.is_final:
            store.put(entry)
    log.collected(record, job.state.value if job.state else "?")
    failed = sum(not e.is_final for e in entries)
    print(f"batch: {record['job']} ended {job.state.value if job.state else '?'}: "
          f"{len(entries) - failed} answered, {failed} failed or missing", file=sys.stderr)
    return entries


def run_batch(requests: list[GeminiRequest], gemini: GeminiParams, client: Any, credentials: Any,
              store: AnswerStore, clips_dir: Path, concurrency: int) -> BatchOutcome:
    """Resume unfinished jobs, then submit the still-missing requests (split under Vertex's per-job limits), in up to
    EVUD_BATCH_ROUNDS rounds of jobs."""
    problem = batch_settings_problem(requests[0].generation) if requests else None
    if problem:
        raise BatchSetupError(problem)
    if not gemini.batch_bucket:
        raise BatchSetupError("gemini.mode=batch needs a GCS bucket for requests and predictions: "
                              "-S gemini.batch_bucket=MY_BUCKET (in the project's batch region)")
    storage = storage_client(gemini, credentials)
    check_bucket(gemini, storage)
    log = BatchJobLog(store)
    outcome = BatchOutcome()
    answered: set[str] = set()
    for record in log.unfinished():
        print(f"batch: resuming {record['job']} (submitted by an earlier run)", file=sys.stderr)
        entries = finish_job(record, client, storage, store, log)
        outcome.entries += entries
        outcome.rows += len(entries)
        answered |= {e.request_key for e in entries if e.is_final}
        outcome.jobs.append(record["job"])
    asked: set[str] = set()
    for _ in range(runtime_int("EVUD_BATCH_ROUNDS", 3)):
        pending = [r for r in {r.key: r for r in requests}.values() if r.key not in answered]
        if not pending:
            break
        outcome.resubmitted += sum(r.key in asked for r in pending)
        asked |= {r.key for r in pending}
        uris, upload_failures = upload_missing_clips(pending, gemini, clips_dir, storage, concurrency)
        outcome.entries += [failed_entry(r.key, gemini.model, "vertex", upload_failures[r.key], retryable=True)
                            for r in pending if r.key in upload_failures]
        pending = [r for r in pending if r.key in uris or not r.video]  # text-only requests need no clip
        if not pending:
            break
        lines = {r.key: (json.dumps(request_line(r, uris.get(r.key)), sort_keys=True) + "\n").encode()
                 for r in pending}
        # Every job of the round is submitted before any is waited on: Vertex runs them side by side.
        records = [submit_job(group, lines, gemini, client, storage, uris, log) for group in split_jobs(pending, lines)]
        for record in records:
            entries = finish_job(record, client, storage, store, log)
            outcome.entries += entries
            outcome.rows += len(entries)
            answered |= {e.request_key for e in entries if e.is_final}
            outcome.jobs.append(record["job"])
    # A request answered in one round and failed in another: the answer counts.
    final = {e.request_key: e for e in outcome.entries if not e.is_final}
    final.update({e.request_key: e for e in outcome.entries if e.is_final})
    outcome.entries = list(final.values())
    return outcome
