"""Human gold answers: export a review sheet, annotate it, re-run postprocess; nothing unknown is ignored."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evud.core.jsonl import read_jsonl
from evud.core.params import PostParams, PromptParams
from evud.dataset.gold import GoldAnswersError, load_gold_answers
from evud.dataset.postprocess import run
from evud.dataset.review_sheet import REVIEW_COLUMNS
from evud.dataset.review_sheet import main as review_sheet_main
from tests.support.answer_variants import CANONICAL
from tests.support.dataset import nonzero, write_inputs
from tests.support.repo import git_commit_all
from tests.support.repo import run as run_cmd

TEXT = PromptParams(name="evud", format="text", text="prompt")


def build(root: Path, post: PostParams) -> dict:
    manifest = root / "clips.jsonl"
    run(post, TEXT, manifest, root / "responses.jsonl", root / "dataset.json", root / "rejects.jsonl",
        root / "metrics.json")
    return {"dataset": json.loads((root / "dataset.json").read_text()),
            "rejects": list(read_jsonl(root / "rejects.jsonl")),
            "metrics": json.loads((root / "metrics.json").read_text())}


def read_sheet(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def write_sheet(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8-sig", newline="") as f:  # a spreadsheet's BOM, on purpose
        writer = csv.DictWriter(f, fieldnames=REVIEW_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # gold files must live under ./data/gold
    (tmp_path / "data/gold").mkdir(parents=True)
    write_inputs(tmp_path, [CANONICAL, CANONICAL.replace("A toaster", "A pop-up toaster")])
    return tmp_path


def test_export_annotate_repro_round_trip(workdir: Path):
    before = build(workdir, PostParams(video_root="videos"))
    review_sheet_main(["--dataset", "dataset.json", "--manifest", "clips.jsonl", "--out", "data/gold/review.csv"])
    rows = read_sheet(workdir / "data/gold/review.csv")
    assert list(rows[0]) == list(REVIEW_COLUMNS) and len(rows) == 14
    assert rows[0]["video"].startswith("videos/") and rows[0]["window_start"] == "10"
    assert all(r["gold_answer"] == "" for r in rows)

    rows[0]["gold_answer"] = "a chipped 'Best Dad' mug"  # object recognition of the first clip
    rows[13]["gold_answer"] = "A toaster oven"  # world knowledge of the second clip
    unknown = dict(rows[1], ego4d_video_uid="v9", gold_answer="x")  # a typo in an id
    stale = dict(rows[8], question="What was the old question?", gold_answer="y")  # asked before a re-run
    bad_category = dict(rows[3], category="temporal reasoning", gold_answer="z")
    write_sheet(workdir / "data/gold/review.csv", rows + [unknown, stale, bad_category])

    after = build(workdir, PostParams(video_root="videos", gold_answers="data/gold/review.csv"))
    first, second = after["dataset"]
    assert first["human_annotated"] and second["human_annotated"]
    assert first["category_question_answer_tuples"][0]["short answer"] == "a chipped 'Best Dad' mug"
    assert "A chipped 'Best Dad' mug" in [t["value"] for t in first["conversations"]]
    assert second["category_question_answer_tuples"][6]["short answer"] == "A toaster oven"
    # Everything else is as before.
    assert first["category_question_answer_tuples"][1:] == before["dataset"][0]["category_question_answer_tuples"][1:]
    gold_rejects = {r["reason"]: r for r in after["rejects"] if r["scope"] == "gold"}
    assert set(gold_rejects) == {"gold_unknown_clip", "gold_question_mismatch", "gold_unknown_category"}
    assert "v9" in gold_rejects["gold_unknown_clip"]["key"]
    assert "re-export" in gold_rejects["gold_question_mismatch"]["detail"]
    assert after["metrics"]["human_annotated"] == 2
    gold = after["metrics"]["gold"]
    assert (gold["rows"], gold["rows_without_gold"], gold["applied"]) == (17, 12, 2)
    assert nonzero(gold["not_applied_by_reason"]) == {
        "gold_question_mismatch": 1, "gold_unknown_category": 1, "gold_unknown_clip": 1}


def test_gold_answers_in_json_lines(workdir: Path):
    build(workdir, PostParams())
    gold = {"ego4d_video_uid": "v1", "ego4d_clip_uid": "c1", "ego4d_annotation_uid": "a1",
            "ego4d_language_query_index": 1, "category": "Object Localization", "gold_answer": "In the sink"}
    (workdir / "data/gold/gold.jsonl").write_text(json.dumps(gold) + "\n")
    after = build(workdir, PostParams(gold_answers="data/gold/gold.jsonl"))
    record = next(r for r in after["dataset"] if r["ego4d_language_query_index"] == 1)
    assert record["human_annotated"]
    assert record["category_question_answer_tuples"][3] == {
        "category": "object localisation", "question": "Where does the person put the sponge?",
        "short answer": "In the sink"}


def test_conflicting_gold_answers_are_reported_and_neither_applied(workdir: Path):
    row = {"ego4d_video_uid": "v0", "ego4d_clip_uid": "c1", "ego4d_annotation_uid": "a1",
           "ego4d_language_query_index": 0, "category": "world knowledge"}
    lines = [json.dumps(dict(row, gold_answer=a)) for a in ("A toaster", "A grill")]
    (workdir / "data/gold/gold.jsonl").write_text("\n".join(lines) + "\n")
    after = build(workdir, PostParams(gold_answers="data/gold/gold.jsonl"))
    assert [r["reason"] for r in after["rejects"]] == ["gold_conflict"]
    assert after["metrics"]["human_annotated"] == 0


def test_a_gold_file_outside_the_tracked_directory_or_without_its_columns_is_refused(workdir: Path):
    (workdir / "elsewhere.csv").write_text("a,b\n")
    with pytest.raises(GoldAnswersError, match="outside data/gold"):
        load_gold_answers("elsewhere.csv")
    (workdir / "data/gold/bad.csv").write_text("id,answer\n")
    with pytest.raises(GoldAnswersError, match="gold_answer"):
        load_gold_answers("data/gold/bad.csv")
    with pytest.raises(GoldAnswersError, match="does not exist"):
        load_gold_answers("data/gold/missing.csv")


def test_the_committed_empty_gold_file_has_the_review_sheet_columns():
    from tests.support.repo import PROJECT_ROOT

    header = (PROJECT_ROOT / "data/gold/gold_answers.csv").read_text().splitlines()
    assert header == [",".join(REVIEW_COLUMNS)]


def test_gold_loop_with_dvc(reproduced_copy: Path):
    """export -> annotate -> dvc repro, as the README tells it."""
    repo_copy = reproduced_copy
    run_cmd(["python", "-m", "evud.dataset.review_sheet", "--out", "data/gold/review.csv"], repo_copy)
    rows = read_sheet(repo_copy / "data/gold/review.csv")
    rows[0]["gold_answer"] = "Gold answer"
    write_sheet(repo_copy / "data/gold/review.csv", rows)
    git_commit_all(repo_copy, "annotated")
    result = run_cmd(["dvc", "exp", "run", "-S", "post.gold_answers=data/gold/review.csv"], repo_copy)
    assert "Running stage 'postprocess'" in result.stdout and "Running stage 'generate'" not in result.stdout
    dataset = json.loads((repo_copy / "data/ego4d_vqa_gemini.json").read_text())
    assert [r["human_annotated"] for r in dataset].count(True) == 1
    assert json.loads((repo_copy / "metrics/postprocess.json").read_text())["gold"]["applied"] == 1


def test_a_new_sheet_carries_earlier_gold_answers_forward(workdir: Path):
    build(workdir, PostParams())
    review_sheet_main(["--dataset", "dataset.json", "--manifest", "clips.jsonl", "--out", "data/gold/round1.csv"])
    rows = read_sheet(workdir / "data/gold/round1.csv")
    rows[3]["gold_answer"] = "In the dish rack"
    write_sheet(workdir / "data/gold/round1.csv", rows)
    build(workdir, PostParams(gold_answers="data/gold/round1.csv"))
    review_sheet_main(["--dataset", "dataset.json", "--manifest", "clips.jsonl", "--out", "data/gold/round2.csv",
                       "--gold", "data/gold/round1.csv"])
    again = read_sheet(workdir / "data/gold/round2.csv")
    assert [r["gold_answer"] for r in again].count("In the dish rack") == 1 and again[3]["human_annotated"] == "true"
    after = build(workdir, PostParams(gold_answers="data/gold/round2.csv"))
    assert after["metrics"]["gold"]["applied"] == 1
