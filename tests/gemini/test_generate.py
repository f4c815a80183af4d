"""generate on the replay backend (free answers, never stored) and on the local Vertex server: failures named.

(The answers dvc.lock recorded are reused without paying: tests/pipeline/test_paid_work.py, after `dvc pull`.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evud.core.params import load_section
from evud.core.progress import StageIncomplete
from evud.gemini import generate
from evud.gemini.prices import load_prices
from tests.support.repo import PRICES, PROJECT_ROOT

PARAMS = PROJECT_ROOT / "params.yaml"


def run_generate(reproduced: Path, work: Path, manifest: Path | None = None) -> generate.GenerateRun:
    gemini = load_section("gemini", PARAMS)
    gemini = gemini.model_copy(update={"replay_file": str(PROJECT_ROOT / gemini.replay_file)})
    return generate.run(gemini, load_section("prompt", PARAMS), manifest or reproduced / "data/clips.jsonl",
                        reproduced / "data/clips", work / "responses.jsonl", work / "metrics.json", 4,
                        prices=load_prices(PRICES))


def test_replay_answers_are_free_and_never_enter_the_answer_store(reproduced_sample: Path, tmp_path: Path,
                                                                  isolated_store: Path):
    first = run_generate(reproduced_sample, tmp_path)
    again = run_generate(reproduced_sample, tmp_path)
    assert first.facts["calls"] == again.facts["calls"] == 7
    assert not (isolated_store / "answers").exists()  # example answers must never be served as real ones
    assert (tmp_path / "responses.jsonl").read_bytes() == (reproduced_sample / "data/responses.jsonl").read_bytes()


def test_the_free_offline_backend_prints_no_rate_and_no_cost(reproduced_sample: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture):
    """Replay answers are examples read from a file: a request rate or a dollar figure would only mislead."""
    run_generate(reproduced_sample, tmp_path)
    said = capsys.readouterr().err
    assert "generate: 7 clips" in said and "7 answer(s) from the replay file" in said, said
    assert "/min" not in said and "$" not in said and "cost" not in said, said


def test_a_failed_request_is_recorded_for_its_own_clip(reproduced_sample: Path, tmp_path: Path):
    records = [json.loads(line) for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    stranger = next(r for r in records if r["status"] == "ok")
    # New ids (the replay file has no answer for them) and new bytes.
    stranger = {**stranger, "clip_uid": "unknown-clip", "sha256": "0" * 64}
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in records + [stranger]) + "\n")
    outcome = run_generate(reproduced_sample, tmp_path, manifest)
    failed = [r for r in outcome.results if r.status.value == "failed"]
    assert [r.clip_uid for r in failed] == ["unknown-clip"] and "no_replay_response" in failed[0].error
    assert not failed[0].retryable  # the file will never have it: no reason to make DVC run the stage again
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["by_status"]["failed"] == 1 and metrics["not_ok_by_reason"]["failed:no_replay_response"] == 1


def test_an_answer_without_candidates_or_reason_is_asked_again(reproduced_sample: Path, tmp_path: Path, fake_vertex):
    from tests.support.vertex import manifest_clips, run_generate, vertex_params

    glitch = manifest_clips(reproduced_sample)[0]["sha256"]
    fake_vertex.script(glitch, "no_candidates")
    _, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert responses[glitch]["status"] == "failed" and responses[glitch]["retryable"]
    assert responses[glitch]["error"].startswith("no_candidates")
    fake_vertex.reset_counts()
    _, responses = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex))
    assert responses[glitch]["status"] == "ok" and dict(fake_vertex.calls) == {glitch: 1}


def test_clips_with_the_same_bytes_are_each_named_in_their_own_failure(reproduced_sample: Path, tmp_path: Path,
                                                                       fake_vertex, monkeypatch):
    from evud.gemini import generate
    from tests.support.vertex import vertex_params

    records = [json.loads(line) for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    original = next(r for r in records if r["status"] == "ok")
    twin = {**original, "clip_uid": "twin-clip"}  # another query whose window gave the very same bytes
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in (original, twin)))
    os.environ["EVUD_ALLOW_FAILED"] = "1"
    try:
        # Every clip is too large to send inline.
        generate.run(vertex_params(fake_vertex, video_source="inline", inline_limit_mb=0.001), load_prompt(),
                     manifest, reproduced_sample / "data/clips", tmp_path / "out.jsonl", tmp_path / "m.json", 2,
                     prices=load_prices(PRICES))
    except StageIncomplete:
        pass
    finally:
        del os.environ["EVUD_ALLOW_FAILED"]
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {r["clip_uid"] for r in results} == {original["clip_uid"], "twin-clip"}
    for result in results:
        assert result["status"] == "failed" and result["error"].startswith("inline_too_large: the clip file is")
        assert original["clip_uid"] not in result["error"] and "twin-clip" not in result["error"]


def load_prompt():
    from evud.core.params import load_section

    return load_section("prompt", PROJECT_ROOT / "params.yaml")
