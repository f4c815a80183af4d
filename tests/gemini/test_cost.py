"""Cost: the estimate before a run, the budget that refuses to start, the metered cost after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from datetime import date, datetime, timezone

from evud.core.params import load_section
from evud.core.records import ClipRecord, Usage
from evud.gemini.cost import CostLimitExceeded, MissingPrice, estimate_cost, usage_cost
from evud.gemini.prices import ModelPrice, PriceTable, PriceTableError, load_prices, today_utc
from evud.gemini.request import build_request
from stages import generate as generate_stage
from tests.support.fake_vertex import FakeVertex
from tests.support.repo import PARAMS, PRICES
from tests.support.vertex import manifest_clips, run_generate, vertex_params

PRICE = ModelPrice(input_per_1m=2.0, audio_input_per_1m=1.0, output_per_1m=10.0, batch_discount=0.5,
                   frame_tokens={"default": 70, "MEDIA_RESOLUTION_HIGH": 280}, audio_tokens_per_s=30,
                   expected_output_tokens=500)


def clip(seconds: float, index: int = 0) -> ClipRecord:
    return ClipRecord(video_uid="v", clip_uid="c", annotation_uid="a", language_query_index=index, status="ok",
                      sha256=f"{index:064d}", window_start=10.0, window_end=10.0 + seconds, file_start=8.0,
                      file_end=12.0 + seconds)


def test_estimate_counts_window_seconds_at_the_resolution_rate_and_discounts_batch():
    gemini = load_section("gemini", PARAMS).model_copy(update={"model": "m"})
    prompt = load_section("prompt", PARAMS).model_copy(update={"text": "x" * 400})  # 100 tokens
    requests = [build_request(clip(20.0, i), gemini, prompt) for i in range(3)]
    online = estimate_cost(requests, gemini, PRICE)
    assert online.video_seconds == 60.0  # the windows, not the padded files
    # 70 tokens a frame at one frame a second, 30 audio tokens a second (at the audio price), the prompt.
    assert (online.input_tokens, online.output_tokens) == (60 * 70 + 60 * 30 + 300, 1500)
    assert online.cost_usd == pytest.approx(((4200 + 300) * 2.0 + 1800 * 1.0 + 1500 * 10.0) / 1e6)
    high = gemini.model_copy(update={"generation": {**gemini.generation, "media_resolution": "MEDIA_RESOLUTION_HIGH"}})
    assert estimate_cost(requests, high, PRICE).input_tokens == 60 * 280 + 60 * 30 + 300
    batch = estimate_cost(requests, gemini.model_copy(update={"mode": "batch"}), PRICE)
    assert batch.cost_usd == pytest.approx(online.cost_usd / 2)


def test_max_cost_refuses_to_start_and_calls_nothing(reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex):
    with pytest.raises(CostLimitExceeded, match=r"7 clip\(s\) to call.*above gemini.max_cost_usd=\$0.0100"):
        run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, max_cost_usd=0.01))
    assert fake_vertex.total_calls == 0 and not (tmp_path / "responses.jsonl").exists()
    # Within budget it runs; the cost metric comes from the tokens Vertex reported.
    metrics, _ = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, max_cost_usd=1.0))
    gemini = load_section("gemini", PARAMS)
    price = load_prices(PRICES).price_on(gemini.model, today_utc())
    assert metrics["cost_usd"] == metrics["answers_cost_usd"] == pytest.approx((7 * 2000 * price.input_per_1m + 7 * 150 * price.output_per_1m) / 1e6, abs=1e-6)
    assert 0 < metrics["estimated_cost_usd"] < 1.0
    # Only cache misses count against the budget: nothing left to call, nothing to refuse.
    again, _ = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, max_cost_usd=0.0))
    assert again["calls"] == 0


def test_the_estimate_counts_the_reasks_of_stored_cut_answers_and_the_budget_refuses_them(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex, capsys: pytest.CaptureFixture):
    """Answers cut at MAX_TOKENS in the store are asked again (gemini.retry_truncated): those calls are in the
    estimate, and a budget they exceed refuses before any is paid."""
    fake_vertex.default = "truncated"
    run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, retry_truncated=False), allow_failed=False)
    fake_vertex.default = "ok"
    fake_vertex.reset_counts()
    with pytest.raises(CostLimitExceeded, match=r"refusing to start: 7 clip\(s\) to call"):
        run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, max_cost_usd=1e-6))
    assert fake_vertex.total_calls == 0
    capsys.readouterr()
    metrics, _ = run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, max_cost_usd=1.0),
                              allow_failed=False)
    estimated = next(line for line in capsys.readouterr().err.splitlines() if "estimated cost" in line)
    assert "7 clip(s) to call" in estimated and "7 of them re-ask" in estimated, estimated
    assert metrics["calls"] == fake_vertex.total_calls == 7 and metrics["estimated_cost_usd"] > 0


def test_reasks_of_answers_cut_in_the_run_are_refused_before_they_are_paid_when_above_the_budget(
        reproduced_sample: Path, tmp_path: Path, fake_vertex: FakeVertex):
    """A budget the first calls fit in but not their re-asks: the answers are kept, no re-ask is sent, the stage
    says so and exits non-zero."""
    fake_vertex.default = "truncated"
    gemini = vertex_params(fake_vertex)
    price = load_prices(PRICES).price_on(gemini.model, today_utc())
    clips = [ClipRecord.model_validate(c) for c in manifest_clips(reproduced_sample)]
    first = estimate_cost([build_request(c, gemini, load_section("prompt", PARAMS)) for c in clips], gemini, price)
    spent = len(clips) * (2000 * price.input_per_1m + 150 * price.output_per_1m) / 1e6  # what the fake reports
    with pytest.raises(CostLimitExceeded, match=r"generate: refusing the re-asks: 7 answer\(s\) cut at MAX_TOKENS"):
        run_generate(reproduced_sample, tmp_path, gemini.model_copy(update={"max_cost_usd": first.cost_usd + spent / 2}))
    assert fake_vertex.total_calls == len(clips)
    responses = [json.loads(line) for line in (tmp_path / "responses.jsonl").read_text().splitlines()]
    assert {r["status"] for r in responses} == {"truncated"}


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
    with pytest.raises(MissingPrice, match="conf/prices.yaml has no price for model 'unpriced-model' on 20"):
        run_generate(reproduced_sample, tmp_path, vertex_params(fake_vertex, model="unpriced-model", max_cost_usd=5.0))
    assert fake_vertex.total_calls == 0


# Two models whose price changes on a known day: the estimate and the cost use the price in force on the day.
TABLE = PriceTable.model_validate({"models": {
    "argon": {"frame_tokens": {"default": 70}, "expected_output_tokens": 1000, "prices": [
        {"from": "2026-10-13", "input_per_1m": 2.0, "output_per_1m": 10.0},
        {"from": "2026-12-01", "input_per_1m": 4.0, "output_per_1m": 20.0}]},
    "flash": {"frame_tokens": {"default": 70}, "expected_output_tokens": 1000, "prices": [
        {"from": "2026-09-02", "input_per_1m": 0.75, "output_per_1m": 3.75},
        {"from": "2027-01-01", "until": "2027-06-30", "input_per_1m": 1.5, "output_per_1m": 7.5}]},
}})


@pytest.mark.parametrize(("model", "last_day_before", "first_day_after"), [
    ("argon", date(2026, 11, 30), date(2026, 12, 1)), ("flash", date(2026, 12, 31), date(2027, 1, 1))])
def test_the_estimate_uses_the_price_in_force_on_the_runs_date(model: str, last_day_before: date,
                                                               first_day_after: date):
    gemini = load_section("gemini", PARAMS).model_copy(update={"model": model})
    requests = [build_request(clip(10.0, i), gemini, load_section("prompt", PARAMS)) for i in range(4)]
    before = estimate_cost(requests, gemini, TABLE.price_on(model, last_day_before))
    after = estimate_cost(requests, gemini, TABLE.price_on(model, first_day_after))
    assert after.cost_usd == pytest.approx(2 * before.cost_usd)  # both prices double on that day
    budget = gemini.model_copy(update={"max_cost_usd": (before.cost_usd + after.cost_usd) / 2})
    from evud.gemini.cost import check_budget

    check_budget(before, budget, "conf/prices.yaml", last_day_before)  # within the budget the day before
    with pytest.raises(CostLimitExceeded):
        check_budget(after, budget, "conf/prices.yaml", first_day_after)  # never 2x through on the day after


def test_no_price_before_a_models_first_row_or_after_its_until():
    assert TABLE.price_on("flash", date(2026, 9, 1)) is None
    assert TABLE.price_on("flash", date(2027, 6, 30)).input_per_1m == 1.5
    assert TABLE.price_on("flash", date(2027, 7, 1)) is None
    assert TABLE.price_on("unknown", date(2027, 1, 1)) is None


def test_each_answer_is_priced_on_the_day_it_arrived():
    usage = Usage(prompt_tokens=1_000_000, output_tokens=0, total_tokens=1_000_000)
    november, december = (datetime(2026, 11, 30, 23, 59, tzinfo=timezone.utc),
                          datetime(2026, 12, 1, 0, 1, tzinfo=timezone.utc))
    assert usage_cost([(usage, november), (usage, december)], "argon", TABLE, False, date(2027, 1, 1)) == 6.0
    assert usage_cost([(usage, None)], "argon", TABLE, False, date(2026, 11, 1)) == 2.0  # unknown: the run's date
    assert usage_cost([(usage, november)], "argon", TABLE, True, date(2027, 1, 1)) == 1.0  # batch: half


def test_the_committed_price_table_reads_and_prices_every_preset_today(tmp_path: Path):
    table = load_prices(PRICES)
    for preset in sorted((PRICES.parent / "gemini").glob("*.yaml")):
        model = yaml.safe_load(preset.read_text()).get("model")
        if model:
            assert table.price_on(model, today_utc()) is not None, model
    bad = tmp_path / "prices.yaml"
    bad.write_text("models:\n  m:\n    frame_tokens: {default: 70}\n    prices:\n"
                   "      - {from: 2027-01-01, input_per_1m: 1, output_per_1m: 2}\n"
                   "      - {from: 2026-01-01, input_per_1m: 1, output_per_1m: 2}\n")
    with pytest.raises(PriceTableError, match=r"prices.yaml: models.m: Value error, prices must be in date order"):
        load_prices(bad)
