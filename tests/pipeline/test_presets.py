"""The gemini presets of conf/: every one composes and reaches Vertex with its model and location, the default
follows the model guides, and generation settings given with -S reach the request and its key."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from evud.core.params import load_section
from evud.gemini.request import generation_config
from tests.support.fake_vertex import FAST_ENV, FakeVertex
from tests.support.pipeline import use_fake_vertex
from tests.support.repo import PARAMS, PROJECT_ROOT, git_commit_all, make_repo_copy, run

PRESETS = sorted(p.stem for p in (PROJECT_ROOT / "conf/gemini").glob("*.yaml") if p.stem != "base")


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
