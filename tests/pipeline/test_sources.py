"""Each source's bundled sample (Ego4D Moments, EPIC-KITCHENS-100, a windows file) runs end to end offline the way a
user switches to it, `dvc exp run -S data=<group>`, and its window text reaches the dataset, the browse page and the
Hugging Face export, which `datasets` loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evud.core.jsonl import read_jsonl
from tests.support.fake_vertex import FAST_ENV
from tests.support.hf import assert_export_loads
from tests.support.repo import run, stages_run

STAGES = {"prepare", "generate", "verify", "postprocess", "browse", "export"}
SOURCES = {  # data group: (data.source, clips in the dataset, the text of one window, skipped windows by reason)
    "moments_sample": ("ego4d_moments", 3, "wash_dishes_/_utensils_/_bakeware_etc.", {"empty_window": 1}),
    "epic_kitchens_sample": ("epic_kitchens", 4, "wash cup", {"window_outside_video": 1, "window_too_short": 1}),
    "windows": ("windows", 2, "putting the kettle on the stove", {}),
}


@pytest.mark.parametrize("group", sorted(SOURCES))
def test_each_source_sample_runs_end_to_end_offline(group: str, reproduced_copy: Path, tmp_path: Path):
    source, clips, text, skipped = SOURCES[group]
    result = run(["dvc", "exp", "run", "-S", f"data={group}"], reproduced_copy, env=FAST_ENV)
    assert stages_run(result.stdout) == STAGES
    assert json.loads((reproduced_copy / "metrics/prepare.json").read_text())["not_ok_by_reason"] == skipped
    assert text in {r["query"] for r in read_jsonl(reproduced_copy / "data/clips.jsonl")}  # the window's text
    dataset = json.loads((reproduced_copy / "data/ego4d_vqa_gemini.json").read_text())
    assert len(dataset) == clips and all(len(r["category_question_answer_tuples"]) == 7 for r in dataset)
    assert text in (reproduced_copy / "data/browse/data.js").read_text()  # shown on the page
    assert_export_loads(reproduced_copy / "data/hf", sorted(r["id"] for r in dataset), tmp_path / "hf-cache")
    rows = [json.loads(line) for line in (reproduced_copy / "data/hf/metadata.jsonl").read_text().splitlines()]
    assert {row["source"] for row in rows} == {source} and text in {row["text"] for row in rows}
