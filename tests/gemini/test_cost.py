"""Cost: the estimate before a run, the budget that refuses to start, the metered cost after."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evud.core.params import ModelPrice, load_section
from evud.core.records import ClipRecord
from evud.gemini.cost import CostLimitExceeded, MissingPrice, estimate_cost
from evud.gemini.request import build_request
from stages import generate as generate_stage
from tests.support.fake_vertex import FakeVertex
from tests.support.repo import PARAMS
from tests.support.vertex import run_generate, vertex_params

PRICE = ModelPrice(input_per_1m=2.0, audio_input_per_1m=1.0, output_per_1m=10.0, batch_discount=0.5,
                   frame_tokens={"default": 70, "MEDIA_RESOLUTION_HIGH": 280}, audio_tokens_per_s=30,
                   expected_output_tokens=500)


def clip(seconds: float, index: int = 0) -> ClipRecord:
    return ClipRecord(video_uid="v", clip_uid="c", annotation_uid="a", language_query_index=index, status="ok",
                      sha256=f"{index:064d}", window_start=10.0, window_end=10.0 + seconds, file_start=8.0,
                      file_end=12.0 + seconds)


def test_estimate_counts_window_seconds_at_the_resolution_rate_and_discounts_batch():
    gemini = load_section("gemini", PARAMS).model_copy(update={"model": "m", "pricing": {"m": PRICE}})
    prompt = load_section("prompt", PARAMS).model_copy(update={"text": "x" * 400})  # 100 tokens
    requests = [build_request(clip(20.0, i), gemini, prompt) for i in range(3)]
    online = estimate_cost(requests, gemini)
    assert online.video_seconds == 60.0  # the windows, not the padded files
    # 70 tokens a frame at one frame a second, 30 audio tokens a second (at the audio price), the prompt.
    assert (online.input_tokens, online.output_tokens) == (60 * 70 + 60 * 30 + 300, 1500)
    assert online.cost_usd == pytest.approx(((4200 + 300) * 2.0 + 1800 * 1.0 + 1500 * 10.0) / 1e6)
    high = gemini.model_copy(update={"generation": {**gemini.generation, "media_resolution": "MEDIA_RESOLUTION_HIGH"}})
    assert estimate_cost(requests, high).input_tokens == 60 * 280 + 60 * 30 + 300
    batch = estimate_cost(requests, gemini.model_copy(update={"mode": "batch"}))
    assert batch.cost_usd == pytest.approx(online.cost_usd / 2)


def test_max_cost_refuses_to_start_and_calls_nothing(reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex):
    with pytest.raises(CostLimitExceeded, match=r"7 clip\(s\) to call.*above gemini.max_cost_usd=\$0.0100"):
        run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, max_cost_usd=0.01))
    assert fake_vertex.total_calls == 0 and not (tmp_path / "responses.jsonl").exists()
    # Within budget it runs; the cost metric comes from the tokens Vertex reported.
    metrics, _ = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, max_cost_usd=1.0))
    gemini = load_section("gemini", PARAMS)
    price = gemini.pricing[gemini.model]
    assert metrics["cost_usd"] == metrics["answers_cost_usd"] == pytest.approx((7 * 2000 * price.input_per_1m + 7 * 150 * price.output_per_1m) / 1e6)
    assert 0 < metrics["estimated_cost_usd"] < 1.0
    # Only cache misses count against the budget: nothing left to call, nothing to refuse.
    again, _ = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, max_cost_usd=0.0))
    assert again["calls"] == 0


def test_the_command_line_says_what_to_do_when_refusing(reproduced_sample: Path, tmp_path: Path,
                                                        fake_vertex: FakeVertex, capsys: pytest.CaptureFixture):
    params = yaml.safe_load(PARAMS.read_text())
    params["gemini"].update(backend="vertex", project="p", base_url=fake_vertex.base_url, max_cost_usd=0.001)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_info:
        generate_stage.main(["--manifest", str(reproduced_sample / "data/clips.jsonl"), "--clips-dir",
                       str(reproduced_sample / "data/clips"), "--out", str(tmp_path / "out.jsonl"), "--metrics", str(tmp_path / "m.json"),
                       "--params", str(tmp_path / "params.yaml")])
    assert "refusing to start" in str(exit_info.value.code) and "-S gemini.max_cost_usd=" in str(exit_info.value.code)
    assert fake_vertex.total_calls == 0


def test_a_budget_without_a_price_for_the_model_is_an_error(reproduced_sample: Path, tmp_path: Path,
                                                            fake_vertex: FakeVertex):
    with pytest.raises(MissingPrice, match="gemini.pricing"):
        run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, model="unpriced-model", max_cost_usd=5.0))
    assert fake_vertex.total_calls == 0
