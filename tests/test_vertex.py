"""generate against a local Vertex AI REST server (tests/fake_vertex.py): the real google-genai code path.

What a user relies on: 429/5xx/timeouts are retried and then succeed; a clip that keeps failing is recorded
`failed` and the run completes; refusals and truncations are recorded with their reason; a kill -9 keeps
every answer received; an experiment pays only for what it has never asked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT
from fake_vertex import FAST_ENV, FakeVertex, generate_command
from stages import generate, vertex
from stages.answer_store import AnswerStore
from stages.params import GeminiParams, PromptParams, load_section
from stages.progress import StageIncomplete
from stages.store import store_root

PARAMS = PROJECT_ROOT / "params.yaml"


def vertex_params(fake: FakeVertex, **updates) -> GeminiParams:
    gemini = load_section("gemini", PARAMS)
    return gemini.model_copy(update={"backend": "vertex", "project": "test-project", "base_url": fake.base_url, **updates})


def manifest_clips(repo: Path) -> list[dict]:
    records = [json.loads(line) for line in (repo / "data/clips.jsonl").read_text().splitlines()]
    return [r for r in records if r["status"] == "ok"]


def run_generate(repo: Path, work: Path, gemini: GeminiParams, prompt: PromptParams | None = None,
                 concurrency: int = 4, allow_failed: bool = True) -> tuple[dict, dict[str, dict]]:
    """generate on a reproduced sample, its answer store in `work`; returns (metrics + run facts, responses by clip)."""
    try:
        outcome = generate.run(gemini, prompt or load_section("prompt", PARAMS), repo / "data/clips.jsonl",
                               repo / "data/clips", work / "responses.jsonl", work / "metrics.json", concurrency,
                               store=AnswerStore(str(work / "answers")))
        facts = outcome.facts
    except StageIncomplete:
        if not allow_failed:
            raise
        facts = latest_run_report("generate")
    responses = [json.loads(line) for line in (work / "responses.jsonl").read_text().splitlines()]
    return {**json.loads((work / "metrics.json").read_text()), **facts}, {r["clip_sha256"]: r for r in responses}


def latest_run_report(stage: str) -> dict:
    reports = sorted((store_root() / "reports" / stage).glob("*.json"))
    return json.loads(reports[-1].read_text())


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
    fake_vertex.script(clips[3]["sha256"], 400)  # a client error is not retried
    fake_vertex.script(clips[4]["sha256"], "garbage")  # an answer the SDK cannot read
    metrics, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert responses[doomed]["status"] == "failed" and responses[doomed]["error"].startswith("api_error_503")
    assert fake_vertex.calls[doomed] == int(FAST_ENV["EVUD_RETRY_ATTEMPTS"])
    assert fake_vertex.calls[clips[3]["sha256"]] == 1
    assert metrics["not_ok_by_reason"] == {"failed:api_error_503": 1, "failed:api_error_400": 1,
                                           "failed:unexpected_error": 1}
    assert sum(r["status"] == "ok" for r in responses.values()) == len(responses) - 3
    # The next run asks again for the failed clips only.
    fake_vertex.reset_counts()
    again, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert again["calls"] == 3 and set(fake_vertex.calls) == {doomed, clips[3]["sha256"], clips[4]["sha256"]}
    assert {r["status"] for r in responses.values()} == {"ok"}


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


def test_request_carries_window_offsets_generation_config_and_schema(reproduced_sample: Path, tmp_path: Path,
                                                                     fake_vertex: FakeVertex):
    clips = {c["sha256"]: c for c in manifest_clips(reproduced_sample)}
    schema = {"type": "object", "properties": {"qa": {"type": "array", "items": {"type": "string"}}}}
    prompt = load_section("prompt", PARAMS).model_copy(update={"response_schema": schema})
    gemini = vertex_params(fake_vertex, generation={**load_section("gemini", PARAMS).generation,
                                                    "media_resolution": "MEDIA_RESOLUTION_LOW"})
    _, responses = run_generate(reproduced_sample, tmp_path, gemini, prompt)
    padded = 0
    for body in fake_vertex.bodies:
        video, text = body["contents"][0]["parts"]
        assert {"inlineData", "inline_data"} & set(video) and text["text"] == prompt.text
        config = body["generationConfig"]
        assert config["responseJsonSchema"] == schema and config["responseMimeType"] == "application/json"
        assert config["mediaResolution"] == "MEDIA_RESOLUTION_LOW" and "temperature" not in config
        assert config["thinkingConfig"] == {"thinking_level": "LOW"} and config["maxOutputTokens"] == 8192
        clip = clips[fake_vertex_clip(video)]
        if clip["file_end"] > clip["window_end"]:
            padded += 1
            end = float(video["videoMetadata"]["end_offset"].rstrip("s"))
            assert end == pytest.approx(clip["window_end"] - clip["window_start"], abs=1e-3)
        else:
            assert "videoMetadata" not in video
    assert padded, "the sample should hold a stream-copied clip padded past its window"
    # The schema is part of the request key: the same clips without it are new requests.
    without, _ = run_generate(reproduced_sample, tmp_path / "plain", vertex_params(fake_vertex))
    assert without["calls"] == len(responses)
    assert not {r["request_key"] for r in responses.values()} & \
        {json.loads(line)["request_key"] for line in (tmp_path / "plain/responses.jsonl").read_text().splitlines()}


def fake_vertex_clip(video_part: dict) -> str:
    from fake_vertex import clip_id_of
    return clip_id_of({"contents": [{"parts": [video_part]}]})


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


def test_dvc_exp_run_on_vertex_calls_every_clip_and_builds_the_dataset(repo_copy: Path, fake_vertex: FakeVertex):
    from conftest import git_commit_all, run

    run(["dvc", "repro"], repo_copy)  # offline baseline with the replay backend
    git_commit_all(repo_copy, "baseline")
    overrides = ["-S", "gemini.backend=vertex", "-S", "gemini.project=test-project",
                 "-S", f"gemini.base_url={fake_vertex.base_url}"]
    result = run(["dvc", "exp", "run", *overrides], repo_copy)
    assert "Stage 'prepare' didn't change, skipping" in result.stdout
    n = len(manifest_clips(repo_copy))
    assert fake_vertex.total_calls == n
    dataset = json.loads((repo_copy / "data/ego4d_vqa_gemini.json").read_text())
    assert len(dataset) == n and all(len(r["category_question_answer_tuples"]) == 7 for r in dataset)
    metrics = json.loads((repo_copy / "metrics/generate.json").read_text())
    assert metrics["by_status"] == {"ok": n} and metrics["answers_cost_usd"] > 0
