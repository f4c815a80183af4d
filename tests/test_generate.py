"""generate on the replay backend, and the answers dvc.lock recorded: reuse without paying, failures named."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import PROJECT_ROOT, make_repo_copy, run
from stages import generate
from stages.params import load_section

PARAMS = PROJECT_ROOT / "params.yaml"


def run_generate(reproduced: Path, work: Path, manifest: Path | None = None) -> generate.GenerateRun:
    gemini = load_section("gemini", PARAMS)
    gemini = gemini.model_copy(update={"replay_file": str(PROJECT_ROOT / gemini.replay_file)})
    return generate.run(gemini, load_section("prompt", PARAMS), manifest or reproduced / "data/clips.jsonl",
                        reproduced / "data/clips", work / "responses.jsonl", work / "metrics.json", 4)


def test_replay_answers_are_free_and_never_enter_the_answer_store(reproduced_sample: Path, tmp_path: Path,
                                                                  isolated_store: Path):
    first = run_generate(reproduced_sample, tmp_path)
    again = run_generate(reproduced_sample, tmp_path)
    assert first.facts["calls"] == again.facts["calls"] == 7
    assert not (isolated_store / "answers").exists()  # example answers must never be served as real ones
    assert (tmp_path / "responses.jsonl").read_bytes() == (reproduced_sample / "data/responses.jsonl").read_bytes()


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


def test_answers_the_lock_recorded_are_reused(tmp_path: Path):
    """DVC deletes responses.jsonl before generate re-runs; the answers it held come back from DVC's cache."""
    repo = make_repo_copy(tmp_path / "repo")
    run(["dvc", "repro"], repo)
    result = run(["dvc", "repro", "--force", "--single-item", "generate"], repo)
    assert "7 clips, 7 answered before" in result.stderr, result.stderr
    assert "0 call(s)" in result.stderr
