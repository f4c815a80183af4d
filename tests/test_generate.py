"""generate through the response cache: pay once, keep every answer, retry only failures."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import PROJECT_ROOT
from stages import generate
from stages.params import load_section

PARAMS = PROJECT_ROOT / "params.yaml"


def run_generate(reproduced: Path, work: Path, manifest: Path | None = None, model: str | None = None) -> dict:
    gemini = load_section("gemini", PARAMS)
    gemini = gemini.model_copy(update={"replay_file": str(PROJECT_ROOT / gemini.replay_file),
                                       **({"model": model} if model else {})})
    generate.run(gemini, load_section("prompt", PARAMS), manifest or reproduced / "data/clips.jsonl",
                 reproduced / "data/clips", work / "cache", work / "responses.jsonl", work / "metrics.json", 4)
    return json.loads((work / "metrics.json").read_text())


def test_second_run_makes_no_call_and_a_new_model_pays_only_for_itself(reproduced_sample: Path, tmp_path: Path):
    first = run_generate(reproduced_sample, tmp_path)
    assert (first["calls"], first["cache_hits"]) == (7, 0)
    again = run_generate(reproduced_sample, tmp_path)
    assert (again["calls"], again["cache_hits"]) == (0, 7)
    other = run_generate(reproduced_sample, tmp_path, model="gemini-3.1-flash-lite")
    assert (other["calls"], other["cache_hits"]) == (7, 0)
    back = run_generate(reproduced_sample, tmp_path)
    assert (back["calls"], back["cache_hits"]) == (0, 7)


def test_failed_requests_are_recorded_and_retried_next_run(reproduced_sample: Path, tmp_path: Path):
    records = [json.loads(line) for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    stranger = next(r for r in records if r["status"] == "ok")
    # New ids (the replay file has no answer for them) and new bytes (else it shares a cached answer).
    stranger = {**stranger, "clip_uid": "unknown-clip", "sha256": "0" * 64}
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in records + [stranger]) + "\n")
    first = run_generate(reproduced_sample, tmp_path, manifest)
    assert first["by_status"]["failed"] == 1
    responses = [json.loads(line) for line in (tmp_path / "responses.jsonl").read_text().splitlines()]
    failed = [r for r in responses if r["status"] == "failed"]
    assert failed[0]["clip_uid"] == "unknown-clip" and "no_replay_response" in failed[0]["error"]
    again = run_generate(reproduced_sample, tmp_path, manifest)
    assert again["calls"] == 1 and again["cache_hits"] == 7


def test_torn_last_cache_line_is_ignored(reproduced_sample: Path, tmp_path: Path):
    run_generate(reproduced_sample, tmp_path)
    cache = tmp_path / "cache/responses.jsonl"
    with open(cache, "a") as f:
        f.write('{"request_key": "abc", "status": "o')  # killed mid-write
    again = run_generate(reproduced_sample, tmp_path)
    assert again["calls"] == 0
