"""generate for the Gemini of today, against the local Vertex server: any generation field the SDK knows,
presets that follow the model guides, a preflight that stops setup mistakes before any clip, truncated
thinking answers asked once more with a larger budget, and no answer paid twice by a timeout."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT_ROOT, git_commit_all, make_repo_copy, run
from fake_vertex import FAST_ENV, FakeVertex, generate_command
from stages.gemini import build_request, generation_config
from stages.params import load_section
from stages.records import ClipRecord
from test_paid_work import use_fake_vertex
from test_vertex import manifest_clips, run_generate, vertex_params

PARAMS = PROJECT_ROOT / "params.yaml"
PRESETS = sorted(p.stem for p in (PROJECT_ROOT / "conf/gemini").glob("*.yaml") if p.stem != "base")


def generate_main(reproduced: Path, work: Path, fake: FakeVertex, **gemini_updates) -> subprocess.CompletedProcess:
    """`python -m stages.generate` with params.yaml's gemini section pointed at the fake and updated."""
    params = yaml.safe_load(PARAMS.read_text())
    params["gemini"].update(backend="vertex", project="test-project", base_url=fake.base_url, **gemini_updates)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(generate_command(reproduced, work, work / "params.yaml"), cwd=PROJECT_ROOT,
                          capture_output=True, text=True, env={**os.environ, **FAST_ENV})


def last_line(result: subprocess.CompletedProcess) -> str:
    return result.stderr.strip().splitlines()[-1]


# --- any generation field the SDK knows ---------------------------------------------------------------


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
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
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


def test_a_thinking_level_reaches_the_request_and_changes_its_key(tmp_path: Path, fake_vertex: FakeVertex):
    repo = make_repo_copy(tmp_path / "repo")
    use_fake_vertex(repo, fake_vertex)
    run(["dvc", "repro"], repo, env=FAST_ENV)
    keys = {json.loads(line)["request_key"] for line in (repo / "data/responses.jsonl").read_text().splitlines()}
    fake_vertex.reset_counts()
    run(["dvc", "exp", "run", "-S", "gemini.generation.thinking_config.thinking_level=high"], repo, env=FAST_ENV)
    assert {b["generationConfig"]["thinkingConfig"]["thinking_level"] for b in fake_vertex.bodies} == {"HIGH"}
    new_keys = {json.loads(line)["request_key"] for line in (repo / "data/responses.jsonl").read_text().splitlines()}
    assert len(new_keys) == len(keys) and not new_keys & keys


def test_settings_that_did_not_change_keep_their_request_keys():
    """Answers paid for before this change stay valid: the key of an unchanged config is computed as before."""
    clip = ClipRecord(video_uid="v", clip_uid="c", annotation_uid="a", language_query_index=0, status="ok",
                      sha256="ab" * 32)
    gemini = load_section("gemini", PARAMS).model_copy(update={
        "backend": "vertex", "model": "gemini-3.5-flash",
        "generation": {"temperature": 0.4, "max_output_tokens": 2048, "seed": 0, "media_resolution": None}})
    prompt = load_section("prompt", PARAMS)
    material = {"clip_sha256": clip.sha256, "model": "gemini-3.5-flash", "prompt": prompt.text,
                "generation": {"max_output_tokens": 2048, "seed": 0, "temperature": 0.4}, "response_schema": None}
    before = hashlib.sha256(json.dumps(material, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert build_request(clip, gemini, prompt).key == before


# --- presets ---------------------------------------------------------------------------------------------


def test_every_preset_composes_and_its_model_and_location_reach_vertex(tmp_path: Path, fake_vertex: FakeVertex):
    repo = make_repo_copy(tmp_path / "repo")
    run(["dvc", "repro", "prepare"], repo)
    git_commit_all(repo, "clips")
    for preset in PRESETS:
        conf = yaml.safe_load((repo / f"conf/gemini/{preset}.yaml").read_text())
        fake_vertex.reset_counts()
        run(["dvc", "exp", "run", "-S", f"gemini={preset}", "-S", "gemini.backend=vertex", "-S",
             "gemini.project=test-project", "-S", f"gemini.base_url={fake_vertex.base_url}"], repo, env=FAST_ENV)
        targets = {(model, location) for _, model, location in fake_vertex.targets}
        assert targets == {(conf["model"], conf["location"])}, preset
        assert conf["location"] == "global"


def test_the_default_preset_follows_the_model_guide():
    gemini = load_section("gemini", PARAMS)
    generation = generation_config(gemini)  # what is sent
    assert "temperature" not in generation  # Gemini 3: keep the model's default
    assert generation["thinking_config"]["thinking_level"] in ("LOW", "MEDIUM")
    assert generation["max_output_tokens"] >= 8192 and gemini.location == "global"
    price = gemini.pricing[gemini.model]
    assert price.output_per_1m > 0 and price.expected_output_tokens >= 600


# --- preflight --------------------------------------------------------------------------------------------


def test_a_model_not_served_in_the_location_stops_before_any_clip(reproduced_sample: Path, tmp_path: Path,
                                                                  fake_vertex: FakeVertex):
    fake_vertex.served["gemini-3.1-flash-lite"] = {"global", "us", "eu"}
    result = generate_main(reproduced_sample, tmp_path, fake_vertex, model="gemini-3.1-flash-lite",
                           location="us-central1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
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
                                                                          fake_vertex: FakeVertex):
    params = yaml.safe_load(PARAMS.read_text())
    params["gemini"].update(backend="vertex", project="test-project", base_url=fake_vertex.base_url)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if k not in ("GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS")}
    env.update(CLOUDSDK_CONFIG=str(tmp_path / "no-gcloud"), HOME=str(tmp_path), NO_GCE_CHECK="true")
    result = subprocess.run(generate_command(reproduced_sample, tmp_path, tmp_path / "params.yaml"), cwd=PROJECT_ROOT,
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    message = last_line(result)
    assert "no Google credentials" in message and "gcloud auth application-default login" in message
    assert "GOOGLE_OAUTH_ACCESS_TOKEN" in message
    assert fake_vertex.targets == {} and not (tmp_path / "responses.jsonl").exists()


# --- truncated thinking answers, timeouts ------------------------------------------------------------------


def test_a_thinking_answer_cut_at_max_tokens_is_asked_once_more_with_a_larger_budget(tmp_path: Path,
                                                                                     fake_vertex: FakeVertex):
    fake_vertex.thinking_tokens = 3000  # thinking eats a 2,048-token budget: every first answer ends at MAX_TOKENS
    repo = make_repo_copy(tmp_path / "repo")
    use_fake_vertex(repo, fake_vertex)
    run(["dvc", "exp", "run", "-S", "gemini.generation.max_output_tokens=2048"], repo, env=FAST_ENV)
    budgets = sorted(b["generationConfig"]["maxOutputTokens"] for b in fake_vertex.bodies)
    clips = len(manifest_clips(repo))
    assert budgets == [2048] * clips + [8192] * clips
    dataset = json.loads((repo / "data/ego4d_vqa_gemini.json").read_text())
    assert len(dataset) == clips and all(len(r["category_question_answer_tuples"]) == 7 for r in dataset)
    metrics = json.loads((repo / "metrics/generate.json").read_text())
    assert metrics["truncated_reasked"] == clips and metrics["truncated_after_reask"] == 0
    assert metrics["by_status"] == {"ok": clips}
    responses = [json.loads(line) for line in (repo / "data/responses.jsonl").read_text().splitlines()]
    assert all(r["reasked_from"] and r["usage"]["thoughts_tokens"] == 3000 for r in responses)
    fake_vertex.reset_counts()
    run(["dvc", "exp", "run", "-S", "gemini.generation.max_output_tokens=2048", "-S", "gemini.max_cost_usd=100"],
        repo, env=FAST_ENV)
    assert fake_vertex.total_calls == 0  # both answers of each clip are in the answer store


def test_a_client_timeout_is_not_retried_in_the_run_and_is_counted_apart(reproduced_sample: Path, tmp_path: Path,
                                                                         fake_vertex: FakeVertex):
    slow = manifest_clips(reproduced_sample)[1]["sha256"]
    fake_vertex.script(slow, "hang")  # no byte within EVUD_REQUEST_TIMEOUT_S: Vertex may still bill it
    metrics, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert fake_vertex.calls[slow] == 1  # not asked again in this run: it may have been billed
    assert responses[slow]["status"] == "failed" and responses[slow]["error"].startswith("timeout")
    assert responses[slow]["retryable"] and metrics["not_ok_by_reason"] == {"failed:timeout": 1}
