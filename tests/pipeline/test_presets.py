"""The gemini presets of conf/: every one composes and reaches Vertex with its model and location, the default
follows the model guides, and generation settings given with -S reach the request and its key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evud.core.params import compose_params, load_section
from evud.core.records import ClipRecord
from evud.gemini.prices import load_prices, today_utc
from evud.gemini.request import build_request, generation_config
from tests.support.fake_vertex import FAST_ENV, FakeVertex
from tests.support.repo import PARAMS, PRICES, PROJECT_ROOT, run, stages_run
from tests.support.vertex import manifest_clips, run_generate

# The Gemini presets (an open model's preset, backend openai, is tested against its own server: test_openai.py).
PRESETS = sorted(p.stem for p in (PROJECT_ROOT / "conf/gemini").glob("*.yaml")
                 if p.stem != "base" and yaml.safe_load(p.read_text()).get("backend") != "openai")


def test_a_thinking_level_reaches_the_request_and_changes_its_key(reproduced_sample: Path, tmp_path: Path,
                                                                   fake_vertex: FakeVertex):
    """conf/ composed with the override as `dvc exp run -S` composes it (DVC's own Hydra helper; the exp run itself
    is test_dvc_exp_run_switches_a_preset_...'s), then generate with those params."""
    clips = [ClipRecord.model_validate_json(line)
             for line in (reproduced_sample / "data/clips.jsonl").read_text().splitlines()]
    vertex = ["gemini.backend=vertex", "gemini.project=test-project", f"gemini.base_url={fake_vertex.base_url}"]
    baseline, params = tmp_path / "baseline.yaml", tmp_path / "params.yaml"
    compose_params(baseline, PROJECT_ROOT / "conf", vertex)
    gemini, prompt = load_section("gemini", baseline), load_section("prompt", baseline)
    assert gemini.generation["thinking_config"]["thinking_level"] != "HIGH"
    keys = {build_request(clip, gemini, prompt).key for clip in clips if clip.status.value == "ok"}
    compose_params(params, PROJECT_ROOT / "conf", ["gemini.generation.thinking_config.thinking_level=high", *vertex])
    _, responses = run_generate(reproduced_sample, tmp_path, load_section("gemini", params), allow_failed=False)
    assert {b["generationConfig"]["thinkingConfig"]["thinking_level"] for b in fake_vertex.qa_bodies} == {"HIGH"}
    new_keys = {r["request_key"] for r in responses.values()}
    assert len(new_keys) == len(keys) and not new_keys & keys


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_its_model_and_location_reach_vertex(preset: str, reproduced_sample: Path,
                                                                      tmp_path: Path, fake_vertex: FakeVertex):
    """conf/ composed with `gemini=<preset>` as `dvc exp run -S` composes it (DVC's own Hydra helper), then generate
    with those params: the request goes to the preset's model in its location."""
    params = tmp_path / "params.yaml"
    compose_params(params, PROJECT_ROOT / "conf", [f"gemini={preset}", "gemini.backend=vertex",
                                                    "gemini.project=test-project", f"gemini.base_url={fake_vertex.base_url}"])
    gemini = load_section("gemini", params)
    conf = yaml.safe_load((PROJECT_ROOT / f"conf/gemini/{preset}.yaml").read_text())
    assert (gemini.model, gemini.location) == (conf["model"], conf["location"]) and conf["location"] == "global"
    run_generate(reproduced_sample, tmp_path, gemini, load_section("prompt", params))
    targets = {(model, location) for _, model, location in fake_vertex.targets}
    assert targets == {(conf["model"], conf["location"])}, preset


def test_dvc_exp_run_switches_a_preset_to_vertex_calls_every_clip_and_builds_the_dataset(reproduced_copy: Path,
                                                                                        fake_vertex: FakeVertex):
    """`dvc exp run -S gemini=<preset>` (the README's way) switches the whole group, here onto Vertex: prepare is
    not re-run, every clip is asked once of the preset's model, and the dataset is built from the answers."""
    conf = yaml.safe_load((reproduced_copy / "conf/gemini/flash_lite.yaml").read_text())
    result = run(["dvc", "exp", "run", "-S", "gemini=flash_lite", "-S", "gemini.backend=vertex", "-S",
                  "gemini.project=test-project", "-S", f"gemini.base_url={fake_vertex.base_url}"], reproduced_copy,
                 env=FAST_ENV)
    assert stages_run(result.stdout) == {"generate", "verify", "postprocess", "browse", "export"}
    assert "Stage 'prepare' didn't change, skipping" in result.stdout
    # Every clip answered and kept: no reject, and no DVC warning that the rejects out is empty.
    assert "is empty" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert {(model, location) for _, model, location in fake_vertex.targets} == {(conf["model"], conf["location"])}
    assert load_section("gemini", reproduced_copy / "params.yaml").model == conf["model"]
    n = len(manifest_clips(reproduced_copy))
    assert fake_vertex.total_calls == n
    dataset = json.loads((reproduced_copy / "data/ego4d_vqa_gemini.json").read_text())
    assert len(dataset) == n and all(len(r["category_question_answer_tuples"]) == 7 for r in dataset)
    metrics = json.loads((reproduced_copy / "metrics/generate.json").read_text())
    assert metrics["by_status"] == {"ok": n} and metrics["answers_cost_usd"] > 0


def test_the_default_preset_follows_the_model_guide():
    gemini = load_section("gemini", PARAMS)
    generation = generation_config(gemini)  # what is sent
    assert "temperature" not in generation  # Gemini 3: keep the model's default
    assert generation["thinking_config"]["thinking_level"] in ("LOW", "MEDIUM")
    assert generation["max_output_tokens"] >= 8192 and gemini.location == "global"
    price = load_prices(PRICES).price_on(gemini.model, today_utc())
    assert price is not None and price.output_per_1m > 0 and price.expected_output_tokens >= 600
