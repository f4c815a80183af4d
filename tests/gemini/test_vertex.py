"""generate against a local Vertex AI REST server (tests/fake_vertex.py): the real google-genai code path.

What a user relies on: 429/5xx/timeouts are retried and then succeed; a clip that keeps failing is recorded
`failed` and the run completes; refusals and truncations are recorded with their reason; a kill -9 keeps
every answer received; an experiment pays only for what it has never asked.
"""

from __future__ import annotations

import json
import math
import os
from datetime import date
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from evud.core.params import load_section
from evud.dataset import postprocess
from evud.core.store import answer_store_url
from evud.gemini.answer_store import AnswerStore
from evud.gemini.prices import PriceTable
from tests.support.fake_vertex import FAST_ENV, FakeVertex
from tests.support.repo import PARAMS, PROJECT_ROOT
from tests.support.vertex import (
    fake_vertex_clip,
    generate_command,
    generate_main,
    manifest_clips,
    run_generate,
    vertex_params,
)


def test_429_and_5xx_are_retried_then_succeed(reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex):
    clips = manifest_clips(reproduced_sample)
    fake_vertex.script(clips[0]["sha256"], 429, 503, 500, "ok")
    fake_vertex.script(clips[1]["sha256"], 504, "ok")  # Vertex's own deadline: not processed, retried
    metrics, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert {r["status"] for r in responses.values()} == {"ok"}
    assert metrics["retries"] == 4 and metrics["calls"] == len(responses)
    assert fake_vertex.calls[clips[0]["sha256"]] == 4 and fake_vertex.calls[clips[1]["sha256"]] == 2


def test_a_clip_that_keeps_failing_is_recorded_and_the_run_completes(reproduced_sample: Path, tmp_path: Path,
                                                                     fake_vertex: FakeVertex):
    clips = manifest_clips(reproduced_sample)
    doomed = clips[2]["sha256"]
    fake_vertex.script(doomed, *[503] * int(FAST_ENV["EVUD_RETRY_ATTEMPTS"]))
    fake_vertex.script(clips[4]["sha256"], "garbage")  # an answer the SDK cannot read
    metrics, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert responses[doomed]["status"] == "failed" and responses[doomed]["error"].startswith("api_error_503")
    assert fake_vertex.calls[doomed] == int(FAST_ENV["EVUD_RETRY_ATTEMPTS"])
    assert metrics["not_ok_by_reason"] == {"failed:api_error_503": 1, "failed:unexpected_error": 1}
    assert sum(r["status"] == "ok" for r in responses.values()) == len(responses) - 2
    # The next run asks again for the failed clips only.
    fake_vertex.reset_counts()
    again, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert again["calls"] == 2 and set(fake_vertex.calls) == {doomed, clips[4]["sha256"]}
    assert {r["status"] for r in responses.values()} == {"ok"}


def test_a_request_vertex_rejects_as_invalid_is_final_and_asked_again_only_on_demand(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, monkeypatch: pytest.MonkeyPatch):
    """A 400 (INVALID_ARGUMENT) says the request itself is wrong: sending it again (its whole inline clip) on every
    later run can only fail again. It is recorded as `rejected`, counted, and asked again with EVUD_REASK_REJECTED=1."""
    invalid = manifest_clips(reproduced_sample)[3]["sha256"]
    fake_vertex.script(invalid, 400)
    metrics, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert fake_vertex.calls[invalid] == 1  # a client error is not retried
    assert responses[invalid]["status"] == "rejected" and responses[invalid]["error"].startswith("api_error_400")
    assert metrics["by_status"] == {"ok": 6, "rejected": 1}
    assert metrics["not_ok_by_reason"] == {"rejected:api_error_400": 1}
    fake_vertex.reset_counts()
    again, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex), allow_failed=False)
    assert fake_vertex.total_calls == 0 and responses[invalid]["status"] == "rejected"
    monkeypatch.setenv("EVUD_REASK_REJECTED", "1")  # the cause was fixed (a setting, the clip): ask them again
    fake_vertex.reset_counts()
    asked, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert dict(fake_vertex.calls) == {invalid: 1} and responses[invalid]["status"] == "ok"


def test_credentials_refused_mid_run_stop_asking_keep_every_answer_and_exit_1(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, monkeypatch: pytest.MonkeyPatch):
    """A token that expires mid-run (401 after a passing preflight): no request is sent after the first refusal,
    the answers received are kept, the stage exits 1 with one line, and the next run asks only what is missing."""
    monkeypatch.setenv("EVUD_CONCURRENCY", "1")  # one request at a time: exactly 3 answers before the refusal
    fake_vertex.refuse_credentials_after(3)
    refused = generate_main(reproduced_sample, tmp_path, fake_vertex)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "generate: credentials refused after 3 answers: refresh them and re-run"), refused.stderr
    assert fake_vertex.total_calls == 4  # the 3 answered and the one refused: nothing asked after it
    assert len(AnswerStore(answer_store_url()).keys()) == 3
    fake_vertex.refuse_credentials_after(None)  # a fresh token
    fake_vertex.reset_counts()
    again = generate_main(reproduced_sample, tmp_path, fake_vertex)
    assert again.returncode == 0, again.stderr
    assert fake_vertex.total_calls == len(manifest_clips(reproduced_sample)) - 3


def test_refusals_and_truncations_are_final_with_their_reason(reproduced_sample: Path, tmp_path: Path,
                                                            fake_vertex: FakeVertex):
    clips = manifest_clips(reproduced_sample)
    behaviours = {"blocked": ("blocked", "SAFETY"), "recitation": ("blocked", "RECITATION"),
                  "truncated": ("truncated", "MAX_TOKENS"), "empty": ("empty", "STOP")}
    for clip, behaviour in zip(clips, behaviours):
        fake_vertex.script(clip["sha256"], behaviour)
    # Without the re-ask of truncated answers (tests/test_gemini_today.py), every status is final as received.
    metrics, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, retry_truncated=False))
    for clip, (status, reason) in zip(clips, behaviours.values()):
        got = responses[clip["sha256"]]
        assert got["status"] == status and reason in (got["finish_reason"], got["block_reason"])
    assert metrics["not_ok_by_reason"] == {"blocked:SAFETY": 1, "blocked:RECITATION": 1,
                                           "truncated:MAX_TOKENS": 1, "empty:STOP": 1}
    fake_vertex.reset_counts()
    again, _ = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, retry_truncated=False))
    assert again["calls"] == 0 and fake_vertex.total_calls == 0  # final answers are never paid twice


def test_a_new_model_calls_every_clip_once_and_returning_calls_none(reproduced_sample: Path, tmp_path: Path,
                                                                    fake_vertex: FakeVertex):
    n = len({c["sha256"] for c in manifest_clips(reproduced_sample)})
    first, _ = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert first["calls"] == n and fake_vertex.total_calls == n
    fake_vertex.reset_counts()
    other, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, model="gemini-x-lite"))
    assert other["calls"] == n and dict(fake_vertex.models) == {"gemini-x-lite": n}
    assert max(fake_vertex.calls.values()) == 1
    assert {r["model"] for r in responses.values()} == {"gemini-x-lite"}
    fake_vertex.reset_counts()
    back, _ = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert back["calls"] == 0 and back["reused_answers"] == len(responses) and fake_vertex.total_calls == 0
    assert back["reused_from"] == {"answer_store": len(responses), "dvc_cache": 0, "another_run": 0}


def test_kill_9_mid_run_keeps_every_answer_received(reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex):
    fake_vertex.latency_s = 0.4
    params = yaml.safe_load(PARAMS.read_text())
    params["gemini"].update(backend="vertex", project="test-project", base_url=fake_vertex.base_url)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    store = AnswerStore(str(tmp_path / "answers"))
    cmd = generate_command(reproduced_sample, tmp_path, tmp_path / "params.yaml")
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env={**os.environ, "EVUD_CONCURRENCY": "2",
                                                        "EVUD_ANSWER_STORE": store.url},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(store.keys()) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    answered = store.keys()
    assert 2 <= len(answered) < len(manifest_clips(reproduced_sample)), "kill landed outside the run"
    assert not (tmp_path / "responses.jsonl").exists()

    fake_vertex.latency_s = 0
    fake_vertex.reset_counts()
    metrics, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    answered_clips = {r["clip_sha256"] for r in responses.values() if r["request_key"] in answered}
    assert answered_clips and not answered_clips & set(fake_vertex.calls)  # no request for an answered key
    assert metrics["reused_answers"] == len(answered) and {r["status"] for r in responses.values()} == {"ok"}
    assert set(fake_vertex.calls) == {c["sha256"] for c in manifest_clips(reproduced_sample)} - answered_clips


def test_request_carries_generation_config_and_schema_and_no_offsets_for_exact_clips(reproduced_sample: Path,
                                                                                    tmp_path: Path,
                                                                                    fake_vertex: FakeVertex):
    schema = {"type": "object", "properties": {"qa": {"type": "array", "items": {"type": "string"}}}}
    prompt = load_section("prompt", PARAMS).model_copy(update={"response_schema": schema})
    gemini = vertex_params(fake_vertex, generation={**load_section("gemini", PARAMS).generation,
                                                    "media_resolution": "MEDIA_RESOLUTION_LOW"})
    _, responses = run_generate(reproduced_sample, tmp_path, gemini, prompt)
    for body in fake_vertex.bodies:
        video, text = body["contents"][0]["parts"]
        assert {"inlineData", "inline_data"} & set(video) and text["text"] == prompt.text
        config = body["generationConfig"]
        assert config["responseJsonSchema"] == schema and config["responseMimeType"] == "application/json"
        assert config["mediaResolution"] == "MEDIA_RESOLUTION_LOW" and "temperature" not in config
        assert config["thinkingConfig"] == {"thinking_level": "LOW"} and config["maxOutputTokens"] == 8192
        assert "videoMetadata" not in video  # the default cut holds the window and nothing else: nothing to trim
    # The schema is part of the request key: the same clips without it are new requests.
    without, _ = run_generate(reproduced_sample, tmp_path / "plain", vertex_params(fake_vertex))
    assert without["calls"] == len(responses)
    assert not {r["request_key"] for r in responses.values()} & \
        {json.loads(line)["request_key"] for line in (tmp_path / "plain/responses.jsonl").read_text().splitlines()}


def test_copy_clips_carry_offsets_on_the_files_own_timeline(reproduced_sample: Path, tmp_path: Path,
                                                            fake_vertex: FakeVertex):
    """A stream-copied clip starts at the keyframe before its window (and may end after it): Gemini is told where
    the window is on the file's own timeline, whether or not it applies the mp4 edit list."""
    from evud.clips import prepare
    from evud.core.params import ClipParams, GcsParams
    from tests.support.pipeline import working_directory

    with working_directory(reproduced_sample):
        prepare.run(load_section("data", PARAMS), ClipParams(mode="copy"), GcsParams(), tmp_path / "clips",
                    tmp_path / "clips.jsonl", tmp_path / "m.json", 2, store_dir=tmp_path / "store")
    clips = {c["sha256"]: c for c in map(json.loads, (tmp_path / "clips.jsonl").read_text().splitlines())
             if c["status"] == "ok"}
    copy_run = tmp_path / "copy"
    (copy_run / "data").mkdir(parents=True)
    (copy_run / "data/clips.jsonl").write_text((tmp_path / "clips.jsonl").read_text())
    (copy_run / "data/clips").symlink_to(tmp_path / "clips")
    run_generate(copy_run, tmp_path / "work", vertex_params(fake_vertex))
    trimmed = 0
    for body in fake_vertex.bodies:
        video = body["contents"][0]["parts"][0]
        clip = clips[fake_vertex_clip(video)]
        if clip["file_start"] < clip["window_start"] - 1e-6 or clip["file_end"] > clip["window_end"] + 1e-6:
            trimmed += 1
            offsets = video["videoMetadata"]
            assert float(offsets["start_offset"].rstrip("s")) == pytest.approx(clip["window_start"] - clip["file_start"], abs=1e-3)
            assert float(offsets["end_offset"].rstrip("s")) == pytest.approx(clip["window_end"] - clip["file_start"], abs=1e-3)
        else:
            assert "videoMetadata" not in video
    assert trimmed, "the sample's windows do not all start on a keyframe: some copy clips hold a lead-in"


def test_video_fps_is_sent_and_is_part_of_the_key_and_the_estimate(reproduced_sample: Path, tmp_path: Path,
                                                                   fake_vertex: FakeVertex):
    """Gemini looks at 1 frame a second unless told otherwise (videoMetadata.fps, up to 24 on Vertex): more frames
    see more of a short window, and cost more tokens."""
    one, responses = run_generate(reproduced_sample, tmp_path / "one", vertex_params(fake_vertex))
    fake_vertex.reset_counts()
    four, four_responses = run_generate(reproduced_sample, tmp_path / "four", vertex_params(fake_vertex, video_fps=4))
    assert {body["contents"][0]["parts"][0]["videoMetadata"]["fps"] for body in fake_vertex.bodies} == {4.0}
    assert four["calls"] == len(responses)  # every request is a new one
    assert not {r["request_key"] for r in responses.values()} & {r["request_key"] for r in four_responses.values()}
    # The estimate counts four times the frames (the answers it expects are the same).
    from evud.core.records import ClipRecord
    from evud.gemini.cost import estimate_cost
    from evud.gemini.request import build_request

    clips = [ClipRecord.model_validate(c) for c in manifest_clips(reproduced_sample)]
    price = PriceTable.model_validate({"models": {"m": {"frame_tokens": {"default": 70}, "audio_tokens_per_s": 0,
                                                        "prices": [{"from": "2026-01-01", "input_per_1m": 1,
                                                                    "output_per_1m": 1}]}}}).price_on("m", date(2026, 6, 1))
    estimates = {}
    for fps in (None, 4):
        gemini = vertex_params(fake_vertex, model="m", video_fps=fps)
        requests = [build_request(c, gemini, load_section("prompt", PARAMS)) for c in clips]
        estimates[fps] = estimate_cost(requests, gemini, price)
    prompt_tokens = sum(-(-len(load_section("prompt", PARAMS).text) // 4) for _ in clips)
    seconds = estimates[None].video_seconds
    assert estimates[None].input_tokens == prompt_tokens + math.ceil(seconds * 70)
    assert estimates[4].input_tokens == prompt_tokens + math.ceil(seconds * 4 * 70)
    assert four["estimated_cost_usd"] > one["estimated_cost_usd"]


@pytest.mark.parametrize("fps", [0, -1, 24.5, 30])
def test_a_video_fps_vertex_does_not_accept_stops_before_any_request(reproduced_sample: Path, tmp_path: Path,
                                                                     fake_vertex: FakeVertex, fps: float):
    result = generate_main(reproduced_sample, tmp_path, fake_vertex, video_fps=fps)
    assert result.returncode != 0
    assert last_line(result) == f"generate: gemini.video_fps={fps}: Vertex accepts more than 0 and at most 24 frames a second"
    assert fake_vertex.targets == {}


def test_a_clip_too_big_to_send_inline_fails_clearly_without_a_call(reproduced_sample: Path, tmp_path: Path,
                                                                    fake_vertex: FakeVertex,
                                                                    monkeypatch: pytest.MonkeyPatch):
    # The sample clips are 3 to 40 KB: a 0.02 MB limit leaves some under it and some over.
    metrics, responses = run_generate(reproduced_sample, tmp_path,
                                      vertex_params(fake_vertex, video_source="inline", inline_limit_mb=0.02))
    too_big = [r for r in responses.values() if r["status"] == "failed"]
    assert too_big and all("inline_too_large" in r["error"] and "gemini.inline_limit_mb=0.02" in r["error"]
                           for r in too_big)
    assert not any(r["retryable"] for r in too_big)  # only another setting helps
    assert fake_vertex.total_calls == len(responses) - len(too_big)


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(("generation", "message"), [
    ({"max_output_tokens": 8192, "temprature": 0.2},
     "gemini.generation.temprature: not a setting of google-genai's GenerateContentConfig; known settings: "),
    ({"max_output_tokens": "many"}, "gemini.generation.max_output_tokens='many': Input should be a valid integer"),
    ({"thinking_config": {"thinking_level": "lowest"}},
     "gemini.generation.thinking_config.thinking_level='lowest': not one of MINIMAL, LOW, MEDIUM, HIGH, XHIGH"),
    ({"thinking_config": {"thinking_levl": "LOW"}},
     "gemini.generation.thinking_config.thinking_levl: not a setting of google-genai's ThinkingConfig; known "
     "settings: include_thoughts, thinking_budget, thinking_level"),
    ({"response_mime_type": "application/json"},
     "gemini.generation.response_mime_type: set by prompt.response_schema (structured answers), not here"),
])
def test_an_unknown_generation_key_or_a_wrong_value_stops_before_any_request(reproduced_sample: Path, tmp_path: Path,
                                                                             fake_vertex: FakeVertex, generation, message):
    result = generate_main(reproduced_sample, tmp_path, fake_vertex, generation=generation)
    assert result.returncode != 0
    assert last_line(result).startswith(f"generate: {message}"), last_line(result)
    assert fake_vertex.targets == {} and not (tmp_path / "responses.jsonl").exists()


def test_nulls_are_dropped_and_any_sdk_field_is_sent(reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex):
    generation = {"max_output_tokens": 4096, "temperature": None, "top_p": 0.9, "stop_sequences": ["###"],
                  "thinking_config": {"thinking_level": "low", "thinking_budget": None},
                  "system_instruction": "You look at first-person video."}
    run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, generation=generation))
    body = fake_vertex.bodies[0]
    config = body["generationConfig"]
    assert config["maxOutputTokens"] == 4096 and config["topP"] == 0.9 and config["stopSequences"] == ["###"]
    assert config["thinkingConfig"] == {"thinking_level": "LOW"} and "temperature" not in config
    assert body["systemInstruction"]["parts"][0]["text"] == "You look at first-person video."


def test_a_model_not_served_in_the_location_stops_before_any_clip(reproduced_sample: Path, tmp_path: Path,
                                                                  fake_vertex: FakeVertex):
    fake_vertex.served["gemini-3.1-flash-lite"] = {"global", "us", "eu"}
    result = generate_main(reproduced_sample, tmp_path, fake_vertex, model="gemini-3.1-flash-lite",
                           location="us-central1")
    assert result.returncode != 0
    assert "model gemini-3.1-flash-lite is not served in location us-central1" in last_line(result)
    assert "-S gemini.location=global" in last_line(result)
    assert [t for t in fake_vertex.targets if t[0] == "generateContent"] == []
    assert not (tmp_path / "responses.jsonl").exists()  # no clip is recorded failed for a setup mistake


def test_permission_denied_stops_before_any_clip(reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex):
    fake_vertex.denied_projects.add("test-project")
    result = generate_main(reproduced_sample, tmp_path, fake_vertex)
    assert result.returncode != 0 and "permission denied on project test-project" in last_line(result)
    assert [t for t in fake_vertex.targets if t[0] == "generateContent"] == []
    assert not (tmp_path / "responses.jsonl").exists()


def test_no_credentials_at_all_stops_at_once_with_the_ways_to_provide_them(reproduced_sample: Path, tmp_path: Path,
                                                                          fake_vertex: FakeVertex,
                                                                          monkeypatch: pytest.MonkeyPatch):
    for name in ("GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    # No gcloud configuration, no home with one, no metadata server: Google's whole credential chain comes up empty.
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    result = generate_main(reproduced_sample, tmp_path, fake_vertex)
    assert result.returncode != 0
    message = last_line(result)
    assert "no Google credentials" in message and "gcloud auth application-default login" in message
    assert "GOOGLE_OAUTH_ACCESS_TOKEN" in message
    assert fake_vertex.targets == {} and not (tmp_path / "responses.jsonl").exists()


def test_a_thinking_answer_cut_at_max_tokens_is_asked_once_more_with_a_larger_budget(reproduced_sample: Path,
                                                                                     tmp_path: Path,
                                                                                     fake_vertex: FakeVertex):
    """generate and postprocess in this process (the re-ask is generate's logic; the answer store's reuse under
    every DVC workflow is tests/pipeline/test_paid_work.py's)."""
    fake_vertex.thinking_tokens = 3000  # thinking eats a 2,048-token budget: every first answer ends at MAX_TOKENS
    gemini = vertex_params(fake_vertex)
    gemini = gemini.model_copy(update={"generation": {**gemini.generation, "max_output_tokens": 2048}})
    metrics, responses = run_generate(reproduced_sample, tmp_path, gemini, allow_failed=False)
    budgets = sorted(b["generationConfig"]["maxOutputTokens"] for b in fake_vertex.qa_bodies)
    clips = len(manifest_clips(reproduced_sample))
    assert budgets == [2048] * clips + [8192] * clips
    assert metrics["truncated_reasked"] == clips and metrics["truncated_after_reask"] == 0
    assert metrics["by_status"] == {"ok": clips}
    assert all(r["reasked_from"] and r["usage"]["thoughts_tokens"] == 3000 for r in responses.values())
    postprocess.run(load_section("post", PARAMS), load_section("prompt", PARAMS), reproduced_sample / "data/clips.jsonl",
                    tmp_path / "responses.jsonl", tmp_path / "dataset.json", tmp_path / "rejects.jsonl",
                    tmp_path / "postprocess.json")
    dataset = json.loads((tmp_path / "dataset.json").read_text())
    assert len(dataset) == clips and all(len(r["category_question_answer_tuples"]) == 7 for r in dataset)
    fake_vertex.reset_counts()
    run_generate(reproduced_sample, tmp_path, gemini.model_copy(update={"max_cost_usd": 100}), allow_failed=False)
    assert fake_vertex.all_calls == 0  # both answers of each clip are in the answer store


def test_a_client_timeout_is_not_retried_in_the_run_and_is_counted_apart(reproduced_sample: Path, tmp_path: Path,
                                                                         fake_vertex: FakeVertex, monkeypatch):
    monkeypatch.setenv("EVUD_REQUEST_TIMEOUT_S", "1")
    slow = manifest_clips(reproduced_sample)[1]["sha256"]
    fake_vertex.script(slow, "hang")  # no byte within EVUD_REQUEST_TIMEOUT_S: Vertex may still bill it
    metrics, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert fake_vertex.calls[slow] == 1  # not asked again in this run: it may have been billed
    assert responses[slow]["status"] == "failed" and responses[slow]["error"].startswith("timeout")
    assert responses[slow]["retryable"] and metrics["not_ok_by_reason"] == {"failed:timeout": 1}


def test_the_failure_summary_counts_reasons_and_gives_the_command_that_asks_them_again(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EVUD_REQUEST_TIMEOUT_S", "1")
    clips = manifest_clips(reproduced_sample)
    for clip in clips[:5]:
        fake_vertex.script(clip["sha256"], *[503] * int(FAST_ENV["EVUD_RETRY_ATTEMPTS"]))
    for clip in clips[5:7]:
        fake_vertex.script(clip["sha256"], "hang")
    result = generate_main(reproduced_sample, tmp_path, fake_vertex)
    assert result.returncode == 1
    said = result.stderr
    summary = said[said.index("generate: 7 item(s) not done"):]
    assert "5  failed:api_error_503" in summary and "2  failed:timeout" in summary, summary
    assert "7  failed\n" not in summary  # counted by reason, not by status
    assert "api_error_503 x5" in last_line(result) and "timeout x2" in last_line(result)
    assert "run `dvc repro` (or the same `dvc exp run`) again" in last_line(result), last_line(result)


def test_no_credentials_are_needed_when_every_answer_is_already_paid_for(reproduced_sample: Path, tmp_path: Path,
                                                                         fake_vertex: FakeVertex,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """A param that re-runs generate without changing a request (a budget, a mode knob) on a machine without Google
    credentials (a teammate's clone, CI): no call is needed, so no credential either."""
    first, _ = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert first["calls"] == 7
    for name in ("GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("HOME", str(tmp_path))
    fake_vertex.reset_counts()
    again, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, max_cost_usd=5.0),
                                    allow_failed=False)
    assert again["calls"] == 0 and again["reused_answers"] == 7 and fake_vertex.targets == {}
    assert {r["status"] for r in responses.values()} == {"ok"}
