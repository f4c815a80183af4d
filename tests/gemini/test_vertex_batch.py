"""Batch mode end to end: the real google-genai batches API against the local Vertex fake, requests and
predictions in the GCS emulator; failed or missing rows are re-submitted, a re-run resumes a submitted job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from evud.core.store import store_root
from evud.gemini.answer_store import AnswerStore
from evud.gemini.backends import vertex_batch
from evud.gemini.backends.vertex_batch import BatchJobLog, line_key
from tests.support.fake_vertex import BATCH_BUCKET, FakeVertex, gcs_read
from tests.support.gcs_gate import GcsGate
from tests.support.repo import PARAMS, PROJECT_ROOT
from tests.support.vertex import generate_command, generate_main, manifest_clips, run_generate, vertex_params


def batch_params(fake: FakeVertex, prefix: str):
    return vertex_params(fake, mode="batch", batch_bucket=BATCH_BUCKET, batch_prefix=prefix)


def test_batch_answers_every_clip_and_resubmits_only_failed_or_missing(reproduced_sample: Path, tmp_path: Path,
                                                                     fake_vertex: FakeVertex, gcs_emulator: str):
    clips = manifest_clips(reproduced_sample)
    errored, missing = clips[0]["sha256"], clips[1]["sha256"]
    fake_vertex.script(errored, 500, "ok")  # an error row in the first job
    fake_vertex.script(missing, "hang", "ok")  # a row absent from the first job's output
    metrics, responses = run_generate(reproduced_sample, tmp_path, batch_params(fake_vertex, "e2e"))

    assert {r["status"] for r in responses.values()} == {"ok"} and len(responses) == len(clips)
    assert fake_vertex.total_calls == 0  # nothing went through online generateContent
    assert fake_vertex.jobs_created == 2
    second_job = list(fake_vertex.jobs.values())[1]
    resubmitted = gcs_read(second_job["inputConfig"]["gcsSource"]["uris"][0]).splitlines()
    assert len(resubmitted) == 2
    assert fake_vertex.batch_lines[errored] == 2 and fake_vertex.batch_lines[missing] == 2
    assert sum(fake_vertex.batch_lines.values()) == len(clips) + 2
    assert metrics["mode"] == "batch" and metrics["retries"] == 2 and metrics["calls"] == len(clips) + 2

    line = json.loads(resubmitted[0])["request"]
    video = line["contents"][0]["parts"][0]
    assert video["fileData"]["fileUri"].startswith(f"gs://{BATCH_BUCKET}/e2e/clips/")
    assert video["fileData"]["mimeType"] == "video/mp4" and line["generationConfig"]["maxOutputTokens"] == 8192

    # Same params again: every answer is in the cache, no job is submitted.
    fake_vertex.reset_counts()
    again, _ = run_generate(reproduced_sample, tmp_path, batch_params(fake_vertex, "e2e"))
    assert again["calls"] == 0 and fake_vertex.jobs_created == 2


def test_a_failed_job_is_recorded_and_its_requests_resubmitted(reproduced_sample: Path, tmp_path: Path,
                                                              fake_vertex: FakeVertex, gcs_emulator: str):
    fake_vertex.failing_jobs = 1
    metrics, responses = run_generate(reproduced_sample, tmp_path, batch_params(fake_vertex, "failed-job"))
    assert fake_vertex.jobs_created == 2 and {r["status"] for r in responses.values()} == {"ok"}
    assert metrics["retries"] == len(responses)
    log = BatchJobLog(AnswerStore(str(tmp_path / "answers")))
    records = [json.loads(p.read_text()) for p in sorted(Path(log.root).glob("*.json"))]
    assert sorted(r["collected"] for r in records) == ["JOB_STATE_FAILED", "JOB_STATE_SUCCEEDED"]
    assert not log.unfinished()


def test_a_rerun_resumes_the_submitted_job_instead_of_paying_twice(reproduced_sample: Path, tmp_path: Path,
                                                                  fake_vertex: FakeVertex, gcs_emulator: str):
    params = yaml.safe_load(PARAMS.read_text())
    params["gemini"].update(backend="vertex", project="test-project", base_url=fake_vertex.base_url, mode="batch",
                            batch_bucket=BATCH_BUCKET, batch_prefix="resume")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    cmd = generate_command(reproduced_sample, tmp_path, tmp_path / "params.yaml")
    log = BatchJobLog(AnswerStore(str(tmp_path / "answers")))
    # A slow poll: the process is still waiting on its job when it is killed.
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env={**os.environ, "EVUD_BATCH_POLL_S": "60",
                                                        "EVUD_ANSWER_STORE": str(tmp_path / "answers")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not log.unfinished():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert fake_vertex.jobs_created == 1

    metrics, responses = run_generate(reproduced_sample, tmp_path, batch_params(fake_vertex, "resume"))
    assert fake_vertex.jobs_created == 1  # polled the job it had submitted, did not submit another
    assert {r["status"] for r in responses.values()} == {"ok"} and metrics["calls"] == len(responses)
    assert not log.unfinished()
    assert [json.loads(p.read_text())["collected"] for p in Path(log.root).glob("*.json")] == ["JOB_STATE_SUCCEEDED"]


def test_predictions_with_fields_this_sdk_does_not_know_are_read_and_an_unreadable_row_is_that_rows_failure(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, gcs_emulator: str):
    """Vertex adds fields before the SDK models them (Candidate.score is in v1's content.proto): a prediction line
    is read as the SDK reads its own responses (unknown fields dropped). A line that still cannot be read fails that
    row, never the job: every other paid answer reaches the store, and the job is collected."""
    clips = manifest_clips(reproduced_sample)
    newer, unreadable = clips[0]["sha256"], clips[1]["sha256"]
    fake_vertex.script(newer, "newer_fields")
    fake_vertex.script(unreadable, "unreadable_row", "ok")
    metrics, responses = run_generate(reproduced_sample, tmp_path, batch_params(fake_vertex, "newer"))
    assert responses[newer]["status"] == "ok" and "Category:" in responses[newer]["text"]
    assert {r["status"] for r in responses.values()} == {"ok"}  # the unreadable row was asked again in a 2nd job
    assert fake_vertex.batch_lines[unreadable] == 2 and fake_vertex.jobs_created == 2
    log = BatchJobLog(AnswerStore(str(tmp_path / "answers")))
    collected = [json.loads(p.read_text())["collected"] for p in Path(log.root).glob("*.json")]
    assert collected == ["JOB_STATE_SUCCEEDED", "JOB_STATE_SUCCEEDED"]


def test_prediction_lines_map_to_keys_by_label_else_by_clip_uri():
    record = {"labels": {"k1abc": "k1abc" + "0" * 59}, "uris": {"gs://b/clips/2.mp4": "k2" + "0" * 62}}
    by_label = {"request": {"labels": {"evud_request": "k1abc"}, "contents": []}}
    by_uri = {"request": {"contents": [{"parts": [{"fileData": {"fileUri": "gs://b/clips/2.mp4"}}, {"text": "q"}]}]}}
    stranger = {"request": {"contents": [{"parts": [{"file_data": {"file_uri": "gs://b/clips/9.mp4"}}]}]}}
    assert line_key(by_label, record) == record["labels"]["k1abc"]
    assert line_key(by_uri, record) == record["uris"]["gs://b/clips/2.mp4"]
    assert line_key(stranger, record) is None


# --- setup mistakes: one line each, no traceback ----------------------------------------------------------------------


def last_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def assert_one_line_exit(result, *words: str) -> str:
    """The stage ended with exit 1 and a last line naming each of `words` (generate_main lets a traceback through)."""
    line = last_line(result)
    assert result.returncode == 1, result.stderr
    assert line.startswith("generate: ") and all(word in line for word in words), line
    assert "Traceback" not in result.stderr
    return line


def test_batch_mode_without_a_batch_bucket_stops_generate_with_one_line(reproduced_sample: Path, tmp_path: Path,
                                                                       fake_vertex: FakeVertex):
    result = generate_main(reproduced_sample, tmp_path, fake_vertex, mode="batch", batch_bucket=None)
    assert_one_line_exit(result, "gemini.batch_bucket=MY_BUCKET")
    assert fake_vertex.jobs_created == 0


def test_a_batch_bucket_that_does_not_exist_stops_generate_with_one_line_before_any_job(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, gcs_emulator: str):
    result = generate_main(reproduced_sample, tmp_path, fake_vertex, mode="batch", batch_bucket="evud-no-such-bucket",
                           batch_prefix="missing")
    assert_one_line_exit(result, "gemini.batch_bucket=evud-no-such-bucket", "does not exist", "create it")
    assert fake_vertex.jobs_created == 0


def test_a_batch_bucket_these_credentials_may_not_use_stops_generate_with_one_line(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, gcs_emulator: str,
        monkeypatch: pytest.MonkeyPatch):
    gate = GcsGate(gcs_emulator, denied={BATCH_BUCKET})
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gate.start())
    try:
        result = generate_main(reproduced_sample, tmp_path, fake_vertex, mode="batch", batch_bucket=BATCH_BUCKET,
                               batch_prefix="forbidden")
    finally:
        gate.stop()
    assert_one_line_exit(result, f"gemini.batch_bucket={BATCH_BUCKET}", "403", "roles/storage.objectAdmin")
    assert gate.refused >= 1 and fake_vertex.jobs_created == 0


def test_a_refused_job_creation_stops_generate_with_one_line(reproduced_sample: Path, tmp_path: Path,
                                                           fake_vertex: FakeVertex, gcs_emulator: str):
    fake_vertex.create_errors = [403]  # e.g. Vertex's service agent may not read the bucket
    result = generate_main(reproduced_sample, tmp_path, fake_vertex, mode="batch", batch_bucket=BATCH_BUCKET,
                           batch_prefix="refused-create")
    assert_one_line_exit(result, "could not create a batch job", "403", "service agent")
    assert fake_vertex.jobs_created == 0


def test_a_non_transient_poll_error_stops_generate_with_one_line_and_the_next_run_resumes_the_job(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, gcs_emulator: str):
    fake_vertex.poll_errors = [403]
    result = generate_main(reproduced_sample, tmp_path, fake_vertex, mode="batch", batch_bucket=BATCH_BUCKET,
                           batch_prefix="poll-refused")
    assert_one_line_exit(result, "batchPredictionJobs/1001", "403", "run again")
    assert fake_vertex.jobs_created == 1

    again = generate_main(reproduced_sample, tmp_path, fake_vertex, mode="batch", batch_bucket=BATCH_BUCKET,
                          batch_prefix="poll-refused")
    assert again.returncode == 0, again.stderr
    assert fake_vertex.jobs_created == 1  # the job submitted by the first run was polled, not paid for again
    responses = [json.loads(line) for line in (tmp_path / "responses.jsonl").read_text().splitlines()]
    assert {r["status"] for r in responses} == {"ok"}


def test_a_job_that_no_longer_exists_is_recorded_and_its_requests_submitted_again(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, gcs_emulator: str):
    """A 404 on polling (the job was deleted): its requests are missing, not a failure of every later run."""
    fake_vertex.poll_errors = [404]
    metrics, responses = run_generate(reproduced_sample, tmp_path, batch_params(fake_vertex, "gone"))
    assert {r["status"] for r in responses.values()} == {"ok"} and fake_vertex.jobs_created == 2
    log = BatchJobLog(AnswerStore(str(tmp_path / "answers")))
    assert not log.unfinished()


def test_a_malformed_prediction_line_fails_its_request_only_and_the_next_run_asks_it_again(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, gcs_emulator: str,
        monkeypatch: pytest.MonkeyPatch):
    clips = manifest_clips(reproduced_sample)
    malformed = clips[0]["sha256"]
    fake_vertex.script(malformed, "malformed_line", "ok")
    monkeypatch.setenv("EVUD_BATCH_ROUNDS", "1")  # no second job in this run: the next run asks it
    result = generate_main(reproduced_sample, tmp_path, fake_vertex, mode="batch", batch_bucket=BATCH_BUCKET,
                           batch_prefix="malformed")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    responses = {r["clip_sha256"]: r for r in map(json.loads, (tmp_path / "responses.jsonl").read_text().splitlines())}
    assert responses[malformed]["status"] == "failed"
    assert responses[malformed]["error"].startswith("malformed_prediction: ")
    assert {r["status"] for k, r in responses.items() if k != malformed} == {"ok"}
    log = BatchJobLog(AnswerStore(str(store_root() / "answers")))
    assert not log.unfinished()  # the job was collected: a re-run does not read its output again

    again = generate_main(reproduced_sample, tmp_path, fake_vertex, mode="batch", batch_bucket=BATCH_BUCKET,
                          batch_prefix="malformed")
    assert again.returncode == 0, again.stderr
    assert fake_vertex.jobs_created == 2 and fake_vertex.job_requests == [len(clips), 1]
    responses = [json.loads(line) for line in (tmp_path / "responses.jsonl").read_text().splitlines()]
    assert {r["status"] for r in responses} == {"ok"}


# --- Vertex's limits per job ----------------------------------------------------------------------------------------


def test_a_run_over_vertexs_per_job_limits_is_split_into_jobs_under_them_and_every_answer_collected(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, gcs_emulator: str,
        monkeypatch: pytest.MonkeyPatch):
    """Vertex takes at most 200,000 requests and 1 GB of input per job; lowered here to a few requests, then to a few
    lines' bytes."""
    clips = manifest_clips(reproduced_sample)
    assert len(clips) == 7
    monkeypatch.setattr(vertex_batch, "MAX_JOB_REQUESTS", 3)
    metrics, responses = run_generate(reproduced_sample, tmp_path / "by-count", batch_params(fake_vertex, "count"))
    assert fake_vertex.job_requests == [3, 3, 1] and fake_vertex.jobs_created == 3
    assert {r["status"] for r in responses.values()} == {"ok"} and len(responses) == len(clips)
    assert metrics["calls"] == len(clips)

    one_line = fake_vertex.job_input_bytes[-1]  # the job of one request: one line's bytes
    monkeypatch.setattr(vertex_batch, "MAX_JOB_REQUESTS", 200_000)
    monkeypatch.setattr(vertex_batch, "MAX_JOB_INPUT_BYTES", int(2.5 * one_line))
    fake_vertex.reset_counts()
    fake_vertex.job_requests.clear()
    fake_vertex.job_input_bytes.clear()
    _, responses = run_generate(reproduced_sample, tmp_path / "by-bytes", batch_params(fake_vertex, "bytes"))
    assert fake_vertex.job_requests == [2, 2, 2, 1]
    assert max(fake_vertex.job_input_bytes) <= vertex_batch.MAX_JOB_INPUT_BYTES
    assert {r["status"] for r in responses.values()} == {"ok"} and len(responses) == len(clips)
