"""The dataset report: `dvc metrics show` and `dvc plots show` on the reproduced sample."""

from __future__ import annotations

import json
from pathlib import Path

from evud.core.params import PostParams
from evud.core.records import QAPair
from evud.dataset.llava import build_record
from evud.dataset.report import duration_histogram
from tests.support.dataset import clip
from tests.support.repo import run

REPORT_METRICS = ["queries", "clips_ok", "clips_answered", "clips_out", "qa_pairs", "parse_yield", "clip_yield",
                  "clips_rejected_by_reason", "pairs_dropped_by_reason", "rejects_by_reason", "pairs_per_category",
                  "mean_answer_chars", "mean_answer_words", "human_annotated", "gold"]


def test_metrics_show_gives_the_dataset_report(reproduced_sample: Path):
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], reproduced_sample).stdout)
    (workspace,) = shown.values()
    report = workspace["data"]["metrics/postprocess.json"]["data"]
    assert [k for k in REPORT_METRICS if k not in report] == []
    assert report["clips_out"] == 5 and report["qa_pairs"] == 35 and report["clips_answered"] == 6
    assert {k: n for k, n in report["clips_rejected_by_reason"].items() if n} == {"no_qa_blocks": 1,
                                                                                   "response_blocked": 1}
    assert set(report["pairs_per_category"].values()) == {5}


def test_plots_show_renders_the_histogram_and_pairs_per_category(reproduced_sample: Path, tmp_path: Path):
    run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], reproduced_sample)
    html = (tmp_path / "plots/index.html").read_text()
    for title in ("Clip windows by duration", "QA pairs per category", "Rejects by reason"):
        assert html.count(title) == 1, title
    specs = json.loads(run(["dvc", "plots", "show", "--json"], reproduced_sample).stdout)["data"]
    histogram = specs["plots/window_durations.json"][0]["content"]
    assert sum(row["clips"] for row in histogram["data"]["values"]) == 5
    assert histogram["encoding"]["x"]["sort"] is None  # bins in order, not alphabetical
    categories = specs["plots/pairs_per_category.json"][0]["content"]["data"]["values"]
    assert [row["pairs"] for row in categories] == [5] * 7


def test_histogram_bins_are_in_order_and_include_empty_ones():
    pairs = [QAPair(category="world knowledge", question="q?", **{"short answer": "a"})]
    records = [build_record(clip(i, duration=d), pairs, PostParams(require_all_categories=False))
               for i, d in enumerate([0.5, 1.0, 7.0, 12.0])]
    rows = duration_histogram(records, 5)
    assert rows == [{"window_s": "0-5", "clips": 2}, {"window_s": "5-10", "clips": 1}, {"window_s": "10-15", "clips": 1}]


def test_the_docs_explain_every_reject_reason():
    from evud.core.domain import REJECT_REASONS
    from tests.support.repo import PROJECT_ROOT

    readme = (PROJECT_ROOT / "docs/dataset.md").read_text()  # the rejects table
    assert [r for reasons in REJECT_REASONS.values() for r in reasons if f"`{r}`" not in readme] == []
