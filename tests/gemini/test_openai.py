"""generate and verify through an OpenAI-compatible server (tests/support/fake_openai.py, vLLM's protocol on 127.0.0.1):
the real `openai` client code path.

What a user relies on: every ok clip reaches the server with its bytes (or as N frames of it), an answer is paid once
and a model change asks everything again, 429/5xx/timeouts are retried, a refused key stops the run with exit 1 and the
next run asks only what is missing, a wrong model stops before the first clip, and a model of another family can check
Gemini's answers.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from evud.core.errors import UserError
from evud.core.params import compose_params, load_section
from evud.core.records import ClipRecord
from evud.gemini.backend import BackendError
from evud.gemini.backends.openai_compat import OpenAIBackend, OpenAISetupError
from evud.gemini.cost import estimate_cost
from evud.gemini.prices import load_prices
from evud.gemini.request import build_request
from evud.verify.checks import Pair, blind_request, check_params
from tests.support.fake_openai import MODEL, FakeOpenAI, openai_params
from tests.support.fake_vertex import FakeVertex
from tests.support.numbered_video import decode_number, make_numbered_video
from tests.support.repo import PARAMS, PRICES, PROJECT_ROOT
from tests.support.vertex import generate_main, manifest_clips, run_generate, run_verify, vertex_params


def ok_clip_shas(repo: Path) -> set[str]:
    return {c["sha256"] for c in manifest_clips(repo)}


def test_the_sample_goes_to_the_server_each_ok_clip_with_its_bytes_and_is_paid_once(
        reproduced_sample: Path, tmp_path: Path, fake_openai: FakeOpenAI):
    metrics, responses = run_generate(reproduced_sample, tmp_path, openai_params(fake_openai), allow_failed=False)
    shas = ok_clip_shas(reproduced_sample)
    # Every ok clip once, as one video_url part holding exactly its bytes, then the prompt.
    assert dict(fake_openai.calls) == {sha: 1 for sha in shas}
    prompt = load_section("prompt", PARAMS).text
    for received in fake_openai.qa_requests():
        assert len(received.videos) == 1 and not received.images and received.texts == [prompt]
        assert received.body["max_tokens"] == 2048 and received.body["top_k"] == 1
        assert received.body["repetition_penalty"] == 1.05 and "response_format" not in received.body
    assert {r["status"] for r in responses.values()} == {"ok"} and set(responses) == shas
    assert {(r["model"], r["backend"]) for r in responses.values()} == {(MODEL, "openai")}
    assert metrics["tokens_in"] == 1800 * len(shas) and metrics["calls"] == len(shas)
    assert metrics["answers_cost_usd"] > 0  # priced per 1M tokens from conf/prices.yaml
    fake_openai.reset_counts()
    again, _ = run_generate(reproduced_sample, tmp_path, openai_params(fake_openai), allow_failed=False)
    assert fake_openai.all_calls == 0 and again["calls"] == 0 and again["reused_answers"] == len(shas)


def test_a_model_change_asks_every_clip_again_and_going_back_asks_none(reproduced_sample: Path, tmp_path: Path,
                                                                        fake_openai: FakeOpenAI):
    other = "Qwen/Qwen3-VL-8B-Instruct"
    fake_openai.models_served.append(other)
    n = len(ok_clip_shas(reproduced_sample))
    run_generate(reproduced_sample, tmp_path, openai_params(fake_openai), allow_failed=False)
    fake_openai.reset_counts()
    _, responses = run_generate(reproduced_sample, tmp_path, openai_params(fake_openai, model=other), allow_failed=False)
    assert dict(fake_openai.models) == {other: n} and max(fake_openai.calls.values()) == 1
    assert {r["model"] for r in responses.values()} == {other}
    fake_openai.reset_counts()
    run_generate(reproduced_sample, tmp_path, openai_params(fake_openai), allow_failed=False)
    assert fake_openai.all_calls == 0


def test_429_5xx_and_dropped_connection_storms_are_retried_then_succeed(reproduced_sample: Path, tmp_path: Path,
                                                                       fake_openai: FakeOpenAI):
    clips = sorted(ok_clip_shas(reproduced_sample))
    fake_openai.script(clips[0], 429, 429, 500, "ok")
    fake_openai.script(clips[1], 503, 502, "ok")
    fake_openai.script(clips[2], "drop", "drop", "ok")
    metrics, responses = run_generate(reproduced_sample, tmp_path, openai_params(fake_openai), allow_failed=False)
    assert {r["status"] for r in responses.values()} == {"ok"}
    assert (fake_openai.calls[clips[0]], fake_openai.calls[clips[1]], fake_openai.calls[clips[2]]) == (4, 3, 3)
    assert metrics["retries"] == 7


def test_a_request_that_times_out_is_asked_again(reproduced_sample: Path, fake_openai: FakeOpenAI,
                                                 monkeypatch: pytest.MonkeyPatch):
    """One request in flight, so that only the hung one can reach the (short) timeout."""
    monkeypatch.setenv("EVUD_REQUEST_TIMEOUT_S", "2")
    clip = ClipRecord.model_validate(manifest_clips(reproduced_sample)[0])
    gemini = openai_params(fake_openai)
    backend = OpenAIBackend(gemini, reproduced_sample / "data/clips")
    fake_openai.script(clip.sha256, "hang", "ok")
    answer = backend.generate(build_request(clip, gemini, load_section("prompt", PARAMS)))
    assert answer.candidates[0].finish_reason.value == "STOP" and fake_openai.calls[clip.sha256] == 2
    assert dict(backend.retries.by_reason) == {"timeout": 1}


def test_a_clip_that_keeps_failing_is_asked_again_next_run_and_a_400_is_rejected_once(
        reproduced_sample: Path, tmp_path: Path, fake_openai: FakeOpenAI):
    clips = sorted(ok_clip_shas(reproduced_sample))
    fake_openai.script(clips[0], *[500] * 5)  # EVUD_RETRY_ATTEMPTS
    fake_openai.script(clips[1], 400)  # vLLM: the request itself is wrong (e.g. longer than --max-model-len)
    metrics, responses = run_generate(reproduced_sample, tmp_path, openai_params(fake_openai))
    assert responses[clips[0]]["status"] == "failed" and responses[clips[0]]["error"].startswith("api_error_500")
    assert responses[clips[1]]["status"] == "rejected" and fake_openai.calls[clips[1]] == 1
    assert metrics["not_ok_by_reason"] == {"failed:api_error_500": 1, "rejected:api_error_400": 1}
    fake_openai.reset_counts()
    _, responses = run_generate(reproduced_sample, tmp_path, openai_params(fake_openai))
    assert dict(fake_openai.calls) == {clips[0]: 1} and responses[clips[0]]["status"] == "ok"


def test_finish_reason_length_is_max_tokens_asked_once_more_and_content_filter_is_blocked(
        reproduced_sample: Path, tmp_path: Path, fake_openai: FakeOpenAI):
    clips = sorted(ok_clip_shas(reproduced_sample))
    fake_openai.script(clips[0], "length", "ok")
    fake_openai.script(clips[1], "content_filter")
    metrics, responses = run_generate(reproduced_sample, tmp_path, openai_params(fake_openai), allow_failed=False)
    assert responses[clips[0]]["status"] == "ok" and responses[clips[0]]["reasked_from"]
    assert sorted(r.body["max_tokens"] for r in fake_openai.qa_requests() if r.clip_id == clips[0]) == [2048, 8192]
    assert responses[clips[1]]["status"] == "blocked" and responses[clips[1]]["block_reason"] == "SAFETY"
    assert metrics["truncated_reasked"] == 1 and metrics["truncated_after_reask"] == 0


def test_a_key_refused_mid_run_ends_the_stage_with_exit_1_and_the_next_run_asks_only_the_rest(
        reproduced_sample: Path, tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EVUD_CONCURRENCY", "1")  # one request at a time: exactly three are answered
    server = {"backend": "openai", "base_url": fake_openai.base_url, "model": MODEL}
    shas = ok_clip_shas(reproduced_sample)
    fake_openai.refuse_key_after(3)  # the server's key was rotated after three answers
    done = generate_main(reproduced_sample, tmp_path, None, **server)
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith("generate: "), done.stderr
    responses = [json.loads(line) for line in (tmp_path / "responses.jsonl").read_text().splitlines()]
    refused = [r for r in responses if r["status"] == "failed"]
    # Refused, or (once the asking machinery stops at the first refusal, issue 25) not asked: none kept, none lost.
    assert len(refused) == len(shas) - 3 and refused[0]["error"].startswith("api_error_401")
    fake_openai.refuse_key_after(None)
    fake_openai.reset_counts()
    assert generate_main(reproduced_sample, tmp_path, None, **server).returncode == 0
    assert set(fake_openai.calls) == {r["clip_sha256"] for r in refused}


def test_the_backend_says_credentials_refused_on_401_and_403(reproduced_sample: Path, fake_openai: FakeOpenAI):
    """The seam every backend reports a refused key through (evud.gemini.backend.BackendError): the asking machinery
    stops on it."""
    clip = ClipRecord.model_validate(manifest_clips(reproduced_sample)[0])
    gemini = openai_params(fake_openai)
    backend = OpenAIBackend(gemini, reproduced_sample / "data/clips")
    request = build_request(clip, gemini, load_section("prompt", PARAMS))
    for status in (401, 403):
        fake_openai.script(clip.sha256, status)
        with pytest.raises(BackendError) as refused:
            backend.generate(request)
        assert refused.value.credentials_refused and refused.value.retryable and not refused.value.rejected
    fake_openai.script(clip.sha256, 400)
    with pytest.raises(BackendError, match="api_error_400: injected 400") as rejected:
        backend.generate(request)
    assert rejected.value.rejected and not rejected.value.credentials_refused
    fake_openai.script(clip.sha256, 400)
    fake_openai.flat_errors = True  # older vLLM releases and SGLang: the error's fields at the top of the body
    with pytest.raises(BackendError, match="api_error_400: injected 400") as rejected:
        backend.generate(request)
    assert rejected.value.rejected
    small = OpenAIBackend(openai_params(fake_openai, inline_limit_mb=0.001), reproduced_sample / "data/clips")
    with pytest.raises(BackendError, match=r"inline_too_large: .* over gemini.inline_limit_mb=0.001; send frames"):
        small.generate(request)
    assert fake_openai.calls[clip.sha256] == 4  # the clip too large for a request was never sent


def test_preflight_stops_before_any_clip_on_a_model_the_server_does_not_serve(
        reproduced_sample: Path, tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(OpenAISetupError, match=r"model 'Qwen/Qwen2-VL-72B' is not served by http://127\.0\.0\.1:\d+/v1 "
                                               r"\(it serves: Qwen/Qwen2\.5-VL-7B-Instruct\)"):
        run_generate(reproduced_sample, tmp_path, openai_params(fake_openai, model="Qwen/Qwen2-VL-72B"))
    assert fake_openai.all_calls == 0
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    with pytest.raises(OpenAISetupError, match="refused OPENAI_API_KEY"):
        run_generate(reproduced_sample, tmp_path, openai_params(fake_openai))
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(OpenAISetupError, match="needs OPENAI_API_KEY"):
        run_generate(reproduced_sample, tmp_path, openai_params(fake_openai))
    monkeypatch.setenv("OPENAI_API_KEY", "any")
    with pytest.raises(OpenAISetupError, match="could not be reached"):
        run_generate(reproduced_sample, tmp_path, openai_params(fake_openai, base_url="http://127.0.0.1:9/v1"))
    assert fake_openai.all_calls == 0


def test_structured_output_asks_with_the_prompts_json_schema(reproduced_sample: Path, tmp_path: Path,
                                                             fake_openai: FakeOpenAI):
    composed = tmp_path / "json.yaml"
    compose_params(composed, PROJECT_ROOT / "conf", ["prompt=evud_json"])
    prompt = load_section("prompt", composed)
    _, responses = run_generate(reproduced_sample, tmp_path, openai_params(fake_openai), prompt=prompt,
                                allow_failed=False)
    formats = [r.body["response_format"] for r in fake_openai.qa_requests()]
    assert formats and all(f["type"] == "json_schema" and f["json_schema"]["schema"] == prompt.response_schema
                           for f in formats)
    assert all(len(json.loads(r["text"])) == 7 for r in responses.values())


# --- frames mode -----------------------------------------------------------------------------------------------


def numbered_clip(tmp_path: Path) -> ClipRecord:
    """A clip of 4 s at 10 fps whose frame i shows the number i."""
    clips_dir = tmp_path / "clips"
    clips_dir.mkdir()
    make_numbered_video(clips_dir / "numbered.mp4", seconds=4, fps=10, gop=10)
    data = (clips_dir / "numbered.mp4").read_bytes()
    return ClipRecord.model_validate({**manifest_clip_fields(), "clip_path": "numbered.mp4",
                                      "sha256": hashlib.sha256(data).hexdigest(), "window_start": 0.0,
                                      "window_end": 4.0, "duration": 4.0})


def manifest_clip_fields() -> dict:
    return {"video_uid": "v", "clip_uid": "c", "annotation_uid": "a", "language_query_index": 0, "status": "ok",
            "cut_mode": "exact"}


def jpeg_frame(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def clip_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def test_frames_mode_sends_n_images_of_the_window_sampled_uniformly(tmp_path: Path, fake_openai: FakeOpenAI):
    clip = numbered_clip(tmp_path)
    gemini = openai_params(fake_openai, video_mode="frames", video_frames=4)
    request = build_request(clip, gemini, load_section("prompt", PARAMS))
    OpenAIBackend(gemini, tmp_path / "clips").generate(request)
    (received,) = fake_openai.received
    assert not received.videos and len(received.images) == 4
    # The middle of each of 4 one-second spans: 0.5, 1.5, 2.5, 3.5 s, the frames numbered 5, 15, 25, 35.
    numbers = [decode_number(av.VideoFrame.from_ndarray(jpeg_frame(image), format="rgb24"))
               for image in received.images]
    assert numbers == [5, 15, 25, 35]
    frames = clip_frames(tmp_path / "clips/numbered.mp4")
    for number, image in zip(numbers, received.images):  # the picture itself, not only its number
        assert np.abs(jpeg_frame(image).astype(int) - frames[number].astype(int)).mean() < 3
    # N and the sampling decide what the model sees: each is in the key, and neither changes a video_url key.
    keys = {build_request(clip, openai_params(fake_openai, **mode), load_section("prompt", PARAMS)).key
            for mode in ({"video_mode": "frames", "video_frames": 4}, {"video_mode": "frames", "video_frames": 8},
                         {"video_mode": "video_url", "video_frames": 4}, {"video_mode": "video_url", "video_frames": 8})}
    assert len(keys) == 3


def test_the_sample_in_frames_mode_sends_images_only(reproduced_sample: Path, tmp_path: Path,
                                                     fake_openai: FakeOpenAI):
    run_generate(reproduced_sample, tmp_path, openai_params(fake_openai, video_mode="frames", video_frames=6),
                 allow_failed=False)
    requests = fake_openai.qa_requests()
    assert len(requests) == len(ok_clip_shas(reproduced_sample))
    assert all(not r.videos and len(r.images) == 6 for r in requests)
    assert all(jpeg_frame(image).shape[0] > 0 for r in requests for image in r.images)
    # A server started for fewer images a prompt refuses the request: rejected, with what the server said.
    fake_openai.limit_mm_per_prompt = {"image": 4}
    metrics, responses = run_generate(reproduced_sample, tmp_path / "limited",
                                      openai_params(fake_openai, video_mode="frames", video_frames=8))
    assert {r["status"] for r in responses.values()} == {"rejected"}
    assert all("At most 4 image(s) may be provided in one prompt" in r["error"] for r in responses.values())


def test_the_estimate_counts_the_frames_the_server_sees(reproduced_sample: Path, fake_openai: FakeOpenAI):
    clips = [ClipRecord.model_validate(c) for c in manifest_clips(reproduced_sample)]
    prompt = load_section("prompt", PARAMS)
    price = load_prices(PRICES).price_on(MODEL, date(2026, 12, 31))
    for gemini, frames in ((openai_params(fake_openai), price.frames_per_video),
                           (openai_params(fake_openai, video_mode="frames", video_frames=6), 6)):
        requests = [build_request(c, gemini, prompt) for c in clips]
        estimate = estimate_cost(requests, gemini, price)
        prompt_tokens = sum(-(-len(r.prompt_text) // 4) for r in requests)
        assert estimate.input_tokens == prompt_tokens + len(requests) * frames * price.frame_tokens["default"]


def test_gemini_settings_that_no_chat_server_takes_are_refused_or_left_out(fake_openai: FakeOpenAI):
    with pytest.raises(UserError, match="gemini.video_fps=2 is Gemini's videoMetadata.fps"):
        build_request(ClipRecord.model_validate({**manifest_clip_fields(), "sha256": "0" * 64}),
                      openai_params(fake_openai, video_fps=2.0), load_section("prompt", PARAMS))
    with pytest.raises(UserError, match="gemini.extra_body.max_tokens: set by the backend or by gemini.generation"):
        build_request(ClipRecord.model_validate({**manifest_clip_fields(), "sha256": "0" * 64}),
                      openai_params(fake_openai, extra_body={"max_tokens": 5}), load_section("prompt", PARAMS))
    gemini = openai_params(fake_openai, generation={"thinking_config": {"thinking_level": "LOW"}, "seed": 0})
    request = build_request(ClipRecord.model_validate({**manifest_clip_fields(), "sha256": "0" * 64}), gemini,
                            load_section("prompt", PARAMS))
    assert request.generation == {"seed": 0, "extra_body": {"repetition_penalty": 1.05}}


# --- verify ----------------------------------------------------------------------------------------------------


def test_verify_on_the_server_sends_no_video_or_image_to_the_blind_check_and_the_clip_to_grounding(
        reproduced_sample: Path, tmp_path: Path, fake_openai: FakeOpenAI):
    gemini = openai_params(fake_openai)
    run_generate(reproduced_sample, tmp_path, gemini, allow_failed=False)
    fake_openai.blind_answers = {"object recognition": "something else"}  # one pair per clip goes to the judge
    fake_openai.reset_counts()
    metrics, records = run_verify(reproduced_sample, tmp_path, gemini, allow_failed=False, grounded=True)
    n = len(ok_clip_shas(reproduced_sample))
    assert dict(fake_openai.checks) == {"blind": n, "judge": n, "ground": n}
    by_purpose: dict[str, list] = {}
    for received in fake_openai.received:
        by_purpose.setdefault(received.purpose, []).append(received)
    for purpose in ("blind", "judge"):
        assert all(not r.videos and not r.images for r in by_purpose[purpose]), purpose
        assert all(r.body["response_format"]["type"] == "json_schema" for r in by_purpose[purpose])
    assert {hashlib.sha256(r.videos[0]).hexdigest() for r in by_purpose["ground"]} == ok_clip_shas(reproduced_sample)
    # verify.model names a Gemini: a check on this server without a model of its own asks the model it serves.
    assert {(c["purpose"], c["model"], c["backend"]) for r in records for c in r["checks"]} == {
        (p, MODEL, "openai") for p in ("blind", "judge", "ground")}
    fake_openai.reset_counts()
    run_verify(reproduced_sample, tmp_path, gemini, allow_failed=False, grounded=True)
    assert fake_openai.all_calls == 0


def test_gemini_generates_and_an_open_model_on_another_server_judges(reproduced_sample: Path, tmp_path: Path,
                                                                      fake_vertex: FakeVertex,
                                                                      fake_openai: FakeOpenAI):
    gemini = vertex_params(fake_vertex)
    run_generate(reproduced_sample, tmp_path, gemini, allow_failed=False)
    fake_vertex.blind_answers = {"object recognition": "a kettle"}  # Gemini's blind answer differs: judged
    fake_openai.judge_agrees = {"object recognition"}
    fake_vertex.reset_counts()
    judge = {"judge_backend": "openai", "judge_base_url": fake_openai.base_url, "judge_model": MODEL}
    metrics, records = run_verify(reproduced_sample, tmp_path, gemini, allow_failed=False, **judge)
    n = len(ok_clip_shas(reproduced_sample))
    assert dict(fake_vertex.checks) == {"blind": n} and fake_vertex.total_calls == 0
    assert dict(fake_openai.checks) == {"judge": n} and fake_openai.total_calls == 0
    # Each verdict's checks say which model made them.
    assert {(c["purpose"], c["model"], c["backend"]) for r in records for c in r["checks"]} == {
        ("blind", "gemini-3.1-flash-lite", "vertex"), ("judge", MODEL, "openai")}
    assert (metrics["model"], metrics["judge_model"]) == ("gemini-3.1-flash-lite", f"{MODEL} (openai)")
    judged = [p for r in records for p in r["pairs"] if p["category"] == "object recognition"]
    assert len(judged) == n and {p["verdict"] for p in judged} == {"blind_answerable"}
    fake_vertex.reset_counts()
    fake_openai.reset_counts()
    run_verify(reproduced_sample, tmp_path, gemini, allow_failed=False, **judge)
    assert fake_vertex.all_calls == 0 and fake_openai.all_calls == 0


def test_an_answer_of_the_chat_api_is_never_served_for_a_vertex_request_of_the_same_model_and_text(
        fake_openai: FakeOpenAI):
    """Text-only checks carry no clip: the API is in their key, so a Vertex answer and a server's never collide."""
    clip = ClipRecord.model_validate({**manifest_clip_fields(), "sha256": "0" * 64})
    verify = load_section("verify", PARAMS)
    pairs = [Pair(1, "object recognition", "What is held?", "a cup")]
    on_server = openai_params(fake_openai, model="gemini-3.1-flash-lite", extra_body={}, generation={"seed": 0})
    on_vertex = on_server.model_copy(update={"backend": "vertex"})
    keys = {blind_request(clip, pairs, check_params(g, verify, "gemini-3.1-flash-lite").model_copy(
        update={"generation": {"seed": 0}}), verify).key for g in (on_server, on_vertex)}
    assert len(keys) == 2
