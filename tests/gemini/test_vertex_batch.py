"""Batch mode end to end: the real google-genai batches API against the local Vertex fake, requests and
predictions in the GCS emulator; failed or missing rows are re-submitted, a re-run resumes a submitted job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from evud.gemini.answer_store import AnswerStore
from evud.gemini.backends.vertex_batch import BatchJobLog, line_key
from tests.support.fake_vertex import BATCH_BUCKET, FakeVertex, gcs_read
from tests.support.repo import PARAMS, PROJECT_ROOT
from tests.support.vertex import generate_command, manifest_clips, run_generate, vertex_params


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
