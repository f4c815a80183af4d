"""Requests and their keys: exactly what decides an answer, checked by the SDK, canonical, pinned."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from evud.core.params import ParamsError, compose_params, load_section
from evud.core.records import ClipRecord
from evud.gemini.request import build_request, generation_config
from tests.support.repo import PARAMS, PROJECT_ROOT


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


def sample_clip(sha: str = "ab" * 32, **fields) -> ClipRecord:
    return ClipRecord(video_uid="v", clip_uid="c", annotation_uid="a", language_query_index=0, status="ok", sha256=sha,
                      **fields)


def test_the_key_covers_what_decides_the_answer_and_nothing_else():
    gemini = load_section("gemini", PARAMS).model_copy(update={"backend": "vertex"})
    prompt = load_section("prompt", PARAMS)
    key = build_request(sample_clip(), gemini, prompt).key
    changed = [
        build_request(sample_clip("cd" * 32), gemini, prompt),
        build_request(sample_clip(), gemini.model_copy(update={"model": "gemini-3.5-flash"}), prompt),
        build_request(sample_clip(), gemini, prompt.model_copy(update={"text": prompt.text + " "})),
        build_request(sample_clip(), gemini.model_copy(update={"generation": {**gemini.generation, "seed": 1}}), prompt),
        build_request(sample_clip(), gemini, prompt.model_copy(update={"response_schema": {"type": "array"}})),
    ]
    assert len({key, *(r.key for r in changed)}) == 6
    same = [  # where the clip is, its ids, concurrency, paths, the budget: no answer changes
        build_request(sample_clip(clip_path="elsewhere.mp4", clip_uri="gs://b/x.mp4"), gemini, prompt),
        build_request(sample_clip().model_copy(update={"clip_uid": "other"}), gemini, prompt),
        build_request(sample_clip(), gemini.model_copy(update={"max_cost_usd": 5.0}), prompt),
        build_request(sample_clip(), gemini.model_copy(update={"generation": {**gemini.generation,
                                                                               "temperature": None}}), prompt),
    ]
    assert {r.key for r in same} == {key}


@pytest.mark.parametrize(("generation", "message"), [
    ({"temprature": 0.2}, "gemini.generation.temprature: not a setting of google-genai's GenerateContentConfig"),
    ({"max_output_tokens": "many"}, "gemini.generation.max_output_tokens='many': Input should be a valid integer"),
    ({"thinking_config": {"thinking_level": "lowest"}},
     "gemini.generation.thinking_config.thinking_level='lowest': not one of MINIMAL, LOW, MEDIUM, HIGH, XHIGH"),
    ({"http_options": {"timeout": 5}}, "gemini.generation.http_options: runtime settings are environment variables"),
])
def test_generation_settings_are_checked_by_the_sdks_own_model(generation, message):
    gemini = load_section("gemini", PARAMS).model_copy(update={"generation": generation})
    with pytest.raises(ParamsError) as err:
        generation_config(gemini)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(("generation", "message"), [
    ({"max_output_tokens": -5}, "gemini.generation.max_output_tokens=-5: Vertex accepts 1 to 65,536"),
    ({"max_output_tokens": 100_000}, "gemini.generation.max_output_tokens=100000: Vertex accepts 1 to 65,536"),
    ({"temperature": 2.5}, "gemini.generation.temperature=2.5: Vertex accepts 0.0 to 2.0"),
    ({"top_p": -0.1}, "gemini.generation.top_p=-0.1: Vertex accepts 0.0 to 1.0"),
    ({"top_k": 0}, "gemini.generation.top_k=0.0: Vertex accepts 1 or more"),
    ({"candidate_count": 9}, "gemini.generation.candidate_count=9: Vertex accepts 1 to 8"),
    ({"presence_penalty": 2.0}, "gemini.generation.presence_penalty=2.0: Vertex accepts -2.0 up to (not including) 2.0"),
    ({"frequency_penalty": -3}, "gemini.generation.frequency_penalty=-3.0: Vertex accepts -2.0 up to (not including) 2.0"),
    ({"logprobs": 21}, "gemini.generation.logprobs=21: Vertex accepts 1 to 20"),
])
def test_numeric_settings_outside_what_vertex_accepts_are_refused_naming_the_range(generation, message):
    gemini = load_section("gemini", PARAMS).model_copy(update={"generation": generation})
    with pytest.raises(ParamsError) as err:
        generation_config(gemini)
    assert str(err.value) == message


def test_generation_settings_are_canonical_without_nulls():
    gemini = load_section("gemini", PARAMS).model_copy(update={"generation": {
        "max_output_tokens": 4096, "temperature": None, "thinking_config": {"thinking_level": "low",
                                                                            "thinking_budget": None},
        "media_resolution": "MEDIA_RESOLUTION_LOW", "stop_sequences": ["###"]}})
    assert generation_config(gemini) == {"max_output_tokens": 4096, "thinking_config": {"thinking_level": "LOW"},
                                         "media_resolution": "MEDIA_RESOLUTION_LOW", "stop_sequences": ["###"]}


def test_a_prompt_preset_may_quote_the_window_text_and_evud_is_sent_as_written(tmp_path: Path):
    """prompt=evud_text quotes each window's own text (its key then differs by clip); EVUD's prompt has no
    {window_text}: sent verbatim whatever the text, so its keys stay those of answers already paid for."""
    gemini = load_section("gemini", PARAMS).model_copy(update={"backend": "vertex"})
    evud = load_section("prompt", PARAMS)
    narrated, silent = sample_clip(query="wash cup"), sample_clip(query=None)
    assert build_request(narrated, gemini, evud).prompt_text == evud.text == build_request(silent, gemini, evud).prompt_text
    assert build_request(narrated, gemini, evud).key == build_request(silent, gemini, evud).key
    compose_params(tmp_path / "params.yaml", PROJECT_ROOT / "conf", ["prompt=evud_text"])  # as `-S prompt=evud_text`
    quoting = load_section("prompt", tmp_path / "params.yaml")
    sent = build_request(narrated, gemini, quoting).prompt_text
    assert 'described what happens in it as: "wash cup"' in sent and "{window_text}" not in sent
    assert 'as: "(none)"' in build_request(silent, gemini, quoting).prompt_text
    assert build_request(narrated, gemini, quoting).key != build_request(silent, gemini, quoting).key
